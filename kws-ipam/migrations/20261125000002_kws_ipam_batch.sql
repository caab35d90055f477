-- kws-ipam group commit: one call of kws_ipam.batch runs many operations in one transaction
-- (one commit), each with its own outcome; usage counters striped so no row is hot.

-- Leases per pool, spread over 32 rows: a batch adds its net change to any stripe it can lock
-- without waiting (SKIP LOCKED), so concurrent batches never queue behind one counter row.
-- usage() sums the 32 rows of its pool: O(1) whatever the pool size.
CREATE TABLE kws_ipam.usage_stripes (
    pool text NOT NULL,
    stripe smallint NOT NULL,
    allocated bigint NOT NULL,
    PRIMARY KEY (pool, stripe)
);

INSERT INTO kws_ipam.usage_stripes (pool, stripe, allocated)
SELECT p.name, s::smallint,
    CASE WHEN s = 0 THEN (SELECT count(*) FROM kws_ipam.leases l WHERE l.pool = p.name) ELSE 0 END
FROM kws_ipam.pools p, generate_series(0, 31) AS s;

CREATE FUNCTION kws_ipam.pool_stripes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO kws_ipam.usage_stripes (pool, stripe, allocated)
        SELECT NEW.name, s::smallint, 0 FROM generate_series(0, 31) AS s;
    RETURN NULL;
END $$;

CREATE TRIGGER pool_stripes AFTER INSERT ON kws_ipam.pools
    FOR EACH ROW EXECUTE FUNCTION kws_ipam.pool_stripes();

-- The single-operation functions are replaced by kws_ipam.batch (they kept no counters).
DROP FUNCTION kws_ipam.allocate(text, text);
DROP FUNCTION kws_ipam.claim(text, inet, text);
DROP FUNCTION kws_ipam.allocate_specific(text, inet, text);
DROP FUNCTION kws_ipam.release(text, inet);
DROP FUNCTION kws_ipam.insert_lease(text, inet, text);

-- Queue entries are found through free_queue_order and removed by ctid (they are never
-- updated): the primary key index on id only cost every release an index insert.
ALTER TABLE kws_ipam.free_queue DROP CONSTRAINT free_queue_pkey;

-- Runs operation i for every i, in order, in the caller's transaction; one row per operation,
-- in order. No operation raises on a lost race: it answers 'retry' having changed nothing, and
-- the caller submits it again. The operations (p_ops[i]):
--   'a' allocate p_owners[i] in p_pools[i]:  held addr | new addr | empty | nopool | retry
--   'c' claim p_addrs[i] (a fast-path candidate) for p_owners[i], only from the queue entry
--       p_ids[i] when that is not NULL (a copy of an older entry is stale):
--                                             held addr (candidate untouched) | new | stale | retry
--   's' allocate exactly p_addrs[i] to p_owners[i]: new | taken holder (another owner holds it)
--       | owner addr (p_owners[i] holds addr) | retry
--   'r' release p_addrs[i]:                   released owner, and the queue entry's id in o_id
--                                             | notallocated
CREATE FUNCTION kws_ipam.batch(
    p_ops text[], p_pools text[], p_addrs inet[], p_owners text[], p_ids bigint[])
RETURNS TABLE (o_kind text, o_addr inet, o_text text, o_id bigint) LANGUAGE plpgsql AS $$
DECLARE
    i int;
    v_pool text;
    v_addr inet;
    v_owner text;
    v_found inet;
    v_holder text;
    v_id bigint;
    v_ready timestamptz;
    v_queued boolean;
    v_delta int;
    v_qpool text;
    v_quarantine interval;
    d_pools text[] := '{}';
    d_deltas bigint[] := '{}';
    k int;
    j int;
    v_stripe smallint := pg_backend_pid() % 32;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_ops, 1), 0) LOOP
        v_pool := p_pools[i];
        v_owner := p_owners[i];
        v_delta := 0;
        o_addr := NULL;
        o_text := NULL;
        o_id := NULL;
        CASE p_ops[i]
        WHEN 'a', 'c' THEN
            -- An allocation does not look for the owner's lease first: the lease insert finds
            -- it (UNIQUE (pool, owner)), and the address goes back. A claim looks first, so a
            -- candidate is left untouched.
            IF p_ops[i] = 'c' THEN
                SELECT l.address INTO v_found FROM kws_ipam.leases l
                    WHERE l.pool = v_pool AND l.owner = v_owner;
            ELSE
                v_found := NULL;
            END IF;
            IF v_found IS NOT NULL THEN
                o_kind := 'held';
                o_addr := v_found;
            ELSE
                LOOP
                    v_queued := true;
                    IF p_ops[i] = 'c' THEN
                        v_addr := p_addrs[i];
                        DELETE FROM kws_ipam.free_queue f
                            WHERE f.pool = v_pool AND f.address = v_addr AND f.ready_at <= now()
                              AND (p_ids[i] IS NULL OR f.id = p_ids[i])
                            RETURNING f.id, f.ready_at INTO v_id, v_ready;
                        IF NOT FOUND THEN
                            o_kind := 'stale';
                            EXIT;
                        END IF;
                    ELSE
                        DELETE FROM kws_ipam.free_queue f WHERE f.ctid = (
                            SELECT q.ctid FROM kws_ipam.free_queue q
                            WHERE q.pool = v_pool AND q.ready_at <= now()
                            ORDER BY q.ready_at, q.id LIMIT 1 FOR UPDATE SKIP LOCKED)
                            RETURNING f.id, f.address, f.ready_at INTO v_id, v_addr, v_ready;
                        IF NOT FOUND THEN
                            v_queued := false;
                            DELETE FROM kws_ipam.fresh f WHERE f.pool = v_pool AND f.address = (
                                SELECT r.address FROM kws_ipam.fresh r WHERE r.pool = v_pool
                                ORDER BY r.address LIMIT 1 FOR UPDATE SKIP LOCKED)
                                RETURNING f.address INTO v_addr;
                        END IF;
                        IF NOT FOUND THEN
                            SELECT l.address INTO v_found FROM kws_ipam.leases l
                                WHERE l.pool = v_pool AND l.owner = v_owner;
                            IF FOUND THEN
                                o_kind := 'held';
                                o_addr := v_found;
                            ELSIF EXISTS (SELECT 1 FROM kws_ipam.pools p WHERE p.name = v_pool)
                            THEN
                                o_kind := 'empty';
                            ELSE
                                o_kind := 'nopool';
                            END IF;
                            EXIT;
                        END IF;
                    END IF;
                    -- The lease row is the commit point: UNIQUE (pool, address) and
                    -- UNIQUE (pool, owner); a conflict waits for the transaction holding it.
                    INSERT INTO kws_ipam.leases (pool, address, owner)
                        VALUES (v_pool, v_addr, v_owner) ON CONFLICT DO NOTHING;
                    IF FOUND THEN
                        o_kind := 'new';
                        o_addr := v_addr;
                        v_delta := 1;
                        EXIT;
                    END IF;
                    IF EXISTS (SELECT 1 FROM kws_ipam.leases l
                               WHERE l.pool = v_pool AND l.address = v_addr) THEN
                        -- A stale entry (its address is leased): consumed.
                        SELECT l.address INTO v_found FROM kws_ipam.leases l
                            WHERE l.pool = v_pool AND l.owner = v_owner;
                        IF FOUND THEN
                            o_kind := 'held';
                            o_addr := v_found;
                            EXIT;
                        END IF;
                        IF p_ops[i] = 'c' THEN
                            o_kind := 'stale';
                            EXIT;
                        END IF;
                        CONTINUE;
                    END IF;
                    -- The owner got a lease concurrently: the address goes back where it was.
                    IF v_queued THEN
                        INSERT INTO kws_ipam.free_queue (id, pool, address, ready_at)
                            OVERRIDING SYSTEM VALUE VALUES (v_id, v_pool, v_addr, v_ready)
                            ON CONFLICT DO NOTHING;
                    ELSE
                        INSERT INTO kws_ipam.fresh (pool, address) VALUES (v_pool, v_addr)
                            ON CONFLICT DO NOTHING;
                    END IF;
                    SELECT l.address INTO v_found FROM kws_ipam.leases l
                        WHERE l.pool = v_pool AND l.owner = v_owner;
                    IF FOUND THEN
                        o_kind := 'held';
                        o_addr := v_found;
                    ELSE
                        o_kind := 'retry';
                    END IF;
                    EXIT;
                END LOOP;
            END IF;
        WHEN 's' THEN
            v_addr := p_addrs[i];
            INSERT INTO kws_ipam.leases (pool, address, owner) VALUES (v_pool, v_addr, v_owner)
                ON CONFLICT DO NOTHING;
            IF FOUND THEN
                -- After the insert (which waited for any concurrent release of v_addr), so a
                -- queue entry that release just committed is seen. Entries an allocation holds
                -- locked are skipped: it finds the lease and consumes them as stale.
                DELETE FROM kws_ipam.free_queue f WHERE f.ctid IN (
                    SELECT q.ctid FROM kws_ipam.free_queue q
                    WHERE q.pool = v_pool AND q.address = v_addr FOR UPDATE SKIP LOCKED);
                DELETE FROM kws_ipam.fresh f WHERE f.pool = v_pool AND f.address IN (
                    SELECT r.address FROM kws_ipam.fresh r
                    WHERE r.pool = v_pool AND r.address = v_addr FOR UPDATE SKIP LOCKED);
                o_kind := 'new';
                v_delta := 1;
            ELSE
                SELECT l.owner INTO v_holder FROM kws_ipam.leases l
                    WHERE l.pool = v_pool AND l.address = v_addr;
                IF FOUND THEN
                    o_kind := 'taken';
                    o_text := v_holder;
                ELSE
                    SELECT l.address INTO v_found FROM kws_ipam.leases l
                        WHERE l.pool = v_pool AND l.owner = v_owner;
                    IF FOUND THEN
                        o_kind := 'owner';
                        o_addr := v_found;
                    ELSE
                        o_kind := 'retry';
                    END IF;
                END IF;
            END IF;
        WHEN 'r' THEN
            v_addr := p_addrs[i];
            DELETE FROM kws_ipam.leases l WHERE l.pool = v_pool AND l.address = v_addr
                RETURNING l.owner INTO v_holder;
            IF FOUND THEN
                IF v_qpool IS DISTINCT FROM v_pool THEN
                    SELECT p.quarantine INTO v_quarantine FROM kws_ipam.pools p
                        WHERE p.name = v_pool;
                    v_qpool := v_pool;
                END IF;
                INSERT INTO kws_ipam.free_queue (pool, address, ready_at)
                    VALUES (v_pool, v_addr, now() + coalesce(v_quarantine, interval '0'))
                    ON CONFLICT DO NOTHING RETURNING id INTO o_id;
                o_kind := 'released';
                o_text := v_holder;
                v_delta := -1;
            ELSE
                o_kind := 'notallocated';
            END IF;
        ELSE
            RAISE EXCEPTION 'kws_ipam.batch: unknown operation %', p_ops[i];
        END CASE;
        IF v_delta <> 0 THEN
            k := array_position(d_pools, v_pool);
            IF k IS NULL THEN
                d_pools := d_pools || v_pool;
                d_deltas := d_deltas || v_delta::bigint;
            ELSE
                d_deltas[k] := d_deltas[k] + v_delta;
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
    -- One counter update per pool, pools in name order (no lock-order cycles between batches).
    -- Each goes to a stripe this transaction can lock without waiting: the session's own
    -- (backend pid mod 32) when free, else the first free one; when all 32 are locked, it waits
    -- for its own.
    IF coalesce(array_length(d_pools, 1), 0) > 1 THEN
        SELECT array_agg(d.p ORDER BY d.p), array_agg(d.n ORDER BY d.p) INTO d_pools, d_deltas
            FROM unnest(d_pools, d_deltas) AS d(p, n);
    END IF;
    FOR j IN 1 .. coalesce(array_length(d_pools, 1), 0) LOOP
        CONTINUE WHEN d_deltas[j] = 0;
        v_pool := d_pools[j];
        k := d_deltas[j];
        UPDATE kws_ipam.usage_stripes u SET allocated = u.allocated + k
            WHERE u.pool = v_pool AND u.stripe = v_stripe AND u.ctid = (
                SELECT s.ctid FROM kws_ipam.usage_stripes s
                WHERE s.pool = v_pool AND s.stripe = v_stripe FOR NO KEY UPDATE SKIP LOCKED);
        IF NOT FOUND THEN
            UPDATE kws_ipam.usage_stripes u SET allocated = u.allocated + k
                WHERE u.pool = v_pool AND u.stripe = coalesce((
                    SELECT s.stripe FROM kws_ipam.usage_stripes s WHERE s.pool = v_pool
                    LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED), v_stripe);
        END IF;
    END LOOP;
END $$;
