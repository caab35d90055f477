-- kws-ipam: every probe of `leases` inside the batch function is served by the index of what it
-- looks up, whatever the plan cache holds.
--
-- PL/pgSQL keeps a generic plan per statement after a few executions, made with the table's
-- statistics of that moment. Both lease indexes end with the pool, (address, pool) and
-- (owner, pool), so a probe written `pool = $1 AND address = $2` also matches a scan of
-- leases_owner on its second column alone; on a table that was emptied and vacuumed the
-- planner prices both at nothing and can pick that one (shown by tests/postgres.rs), which
-- then reads every lease for each probe, for as long as the connection lives.
-- Here the pool is compared with IS NOT DISTINCT FROM, which no index serves: it stays a
-- filter, so an address probe can only use leases_address and an owner probe only
-- leases_owner. Its meaning is the same (pool is never NULL); an address is leased in at most
-- one pool anyway (pools never overlap), and an owner holds at most one lease per pool.
-- The function keeps the settings of 20261126000004_kws_ipam_batch_plans.sql, set again below
-- since CREATE OR REPLACE resets them.

CREATE OR REPLACE FUNCTION kws_ipam.batch(
    p_ops text[], p_pools text[], p_addrs inet[], p_owners text[], p_ids bigint[])
RETURNS TABLE (o_kind text, o_addr inet, o_text text, o_id bigint) LANGUAGE plpgsql AS $$
DECLARE
    n_ops int := coalesce(array_length(p_ops, 1), 0);
    i int;
    v_pool text;
    v_addr inet;
    v_owner text;
    v_found inet;
    v_holder text;
    v_id bigint;
    v_ready timestamptz;
    v_delta int;
    v_qpool text;
    v_quarantine interval;
    v_fresh inet[];
    v_fresh_ids bigint[];
    v_k int;
    -- The current run's taken entries, in the order they are handed out (free-queue entries
    -- oldest first, then fresh addresses ascending); b_addrs[b_next .. b_len] are not leased.
    b_pool text;
    b_addrs inet[];
    b_ids bigint[];
    b_ready timestamptz[];
    b_next int := 1;
    b_len int := 0;
    b_dry boolean := false;
    v_u int;
    d_pools text[] := '{}';
    d_deltas bigint[] := '{}';
    k int;
    j int;
    v_stripe smallint := pg_backend_pid() % 32;
BEGIN
    FOR i IN 1 .. n_ops LOOP
        v_pool := p_pools[i];
        v_owner := p_owners[i];
        v_delta := 0;
        o_addr := NULL;
        o_text := NULL;
        o_id := NULL;
        -- The run ended: what it took and did not lease goes back before this operation runs.
        IF b_pool IS NOT NULL AND (p_ops[i] <> 'a' OR v_pool <> b_pool) THEN
            IF b_next <= b_len THEN
                PERFORM kws_ipam.put_back(b_pool, b_addrs[b_next:b_len], b_ids[b_next:b_len],
                    b_ready[b_next:b_len]);
            END IF;
            b_pool := NULL;
            b_len := 0;
            b_next := 1;
            b_dry := false;
        END IF;
        CASE p_ops[i]
        WHEN 'a' THEN
            -- No look for the owner's lease first: the lease insert finds it
            -- (UNIQUE (pool, owner)), and the taken entry stays for the next allocation.
            LOOP
                IF b_next > b_len AND NOT b_dry THEN
                    -- Take for this allocation and the allocations of this pool right after it.
                    v_u := 1;
                    WHILE i + v_u <= n_ops AND p_ops[i + v_u] = 'a'
                          AND p_pools[i + v_u] = v_pool LOOP
                        v_u := v_u + 1;
                    END LOOP;
                    b_pool := v_pool;
                    b_next := 1;
                    IF v_u < 3 THEN
                        -- A short run: one entry for this allocation, by the single-row
                        -- statements (cheaper than the set ones for one or two).
                        DELETE FROM kws_ipam.free_queue f WHERE f.ctid = (
                            SELECT q.ctid FROM kws_ipam.free_queue q
                            WHERE q.pool = v_pool AND q.ready_at > '-infinity'
                              AND q.ready_at <= now()
                            ORDER BY q.ready_at, q.id LIMIT 1 FOR UPDATE SKIP LOCKED)
                            RETURNING f.id, f.address, f.ready_at INTO v_id, v_addr, v_ready;
                        IF NOT FOUND THEN
                            DELETE FROM kws_ipam.free_queue f WHERE f.ctid = (
                                SELECT r.ctid FROM kws_ipam.free_queue r
                                WHERE r.pool = v_pool AND r.ready_at = '-infinity'
                                ORDER BY r.address LIMIT 1 FOR UPDATE SKIP LOCKED)
                                RETURNING f.id, f.address, f.ready_at INTO v_id, v_addr, v_ready;
                        END IF;
                        IF FOUND THEN
                            b_addrs := ARRAY[v_addr];
                            b_ids := ARRAY[v_id];
                            b_ready := ARRAY[v_ready];
                            b_len := 1;
                        ELSE
                            b_len := 0;
                        END IF;
                    ELSE
                        WITH t AS (
                            DELETE FROM kws_ipam.free_queue f WHERE f.ctid = ANY (ARRAY(
                                SELECT q.ctid FROM kws_ipam.free_queue q
                                WHERE q.pool = v_pool AND q.ready_at > '-infinity'
                                  AND q.ready_at <= now()
                                ORDER BY q.ready_at, q.id LIMIT v_u FOR UPDATE SKIP LOCKED))
                            RETURNING f.id, f.address, f.ready_at)
                        SELECT coalesce(array_agg(t.address ORDER BY t.ready_at, t.id), '{}'),
                               coalesce(array_agg(t.id ORDER BY t.ready_at, t.id), '{}'),
                               coalesce(array_agg(t.ready_at ORDER BY t.ready_at, t.id), '{}')
                            INTO b_addrs, b_ids, b_ready FROM t;
                        b_len := coalesce(array_length(b_addrs, 1), 0);
                        IF b_len < v_u THEN
                            WITH t AS (
                                DELETE FROM kws_ipam.free_queue f WHERE f.ctid = ANY (ARRAY(
                                    SELECT r.ctid FROM kws_ipam.free_queue r
                                    WHERE r.pool = v_pool AND r.ready_at = '-infinity'
                                    ORDER BY r.address LIMIT v_u - b_len FOR UPDATE SKIP LOCKED))
                                RETURNING f.id, f.address)
                            SELECT coalesce(array_agg(t.address ORDER BY t.address), '{}'),
                                   coalesce(array_agg(t.id ORDER BY t.address), '{}')
                                INTO v_fresh, v_fresh_ids FROM t;
                            v_k := coalesce(array_length(v_fresh, 1), 0);
                            IF v_k > 0 THEN
                                b_addrs := b_addrs || v_fresh;
                                b_ids := b_ids || v_fresh_ids;
                                b_ready := b_ready
                                    || array_fill('-infinity'::timestamptz, ARRAY[v_k]);
                                b_len := b_len + v_k;
                            END IF;
                        END IF;
                    END IF;
                    -- Nothing ready: the rest of the run does not look again.
                    b_dry := b_len = 0;
                END IF;
                IF b_next > b_len THEN
                    SELECT l.address INTO v_found FROM kws_ipam.leases l
                        WHERE l.pool IS NOT DISTINCT FROM v_pool AND l.owner = v_owner;
                    IF FOUND THEN
                        o_kind := 'held';
                        o_addr := v_found;
                    ELSIF EXISTS (SELECT 1 FROM kws_ipam.pools p WHERE p.name = v_pool) THEN
                        o_kind := 'empty';
                    ELSE
                        o_kind := 'nopool';
                    END IF;
                    EXIT;
                END IF;
                v_addr := b_addrs[b_next];
                -- The lease row is the commit point: UNIQUE (pool, address) and
                -- UNIQUE (pool, owner); a conflict waits for the transaction holding it.
                INSERT INTO kws_ipam.leases (pool, address, owner)
                    VALUES (v_pool, v_addr, v_owner) ON CONFLICT DO NOTHING;
                IF FOUND THEN
                    b_next := b_next + 1;
                    o_kind := 'new';
                    o_addr := v_addr;
                    v_delta := 1;
                    EXIT;
                END IF;
                IF EXISTS (SELECT 1 FROM kws_ipam.leases l
                           WHERE l.pool IS NOT DISTINCT FROM v_pool AND l.address = v_addr) THEN
                    -- A stale entry (its address is leased): consumed.
                    b_next := b_next + 1;
                    SELECT l.address INTO v_found FROM kws_ipam.leases l
                        WHERE l.pool IS NOT DISTINCT FROM v_pool AND l.owner = v_owner;
                    IF FOUND THEN
                        o_kind := 'held';
                        o_addr := v_found;
                        EXIT;
                    END IF;
                    CONTINUE;
                END IF;
                -- The owner holds a lease (or got one concurrently): the entry stays taken
                -- for the next allocation of the run, or goes back when the run ends.
                SELECT l.address INTO v_found FROM kws_ipam.leases l
                    WHERE l.pool IS NOT DISTINCT FROM v_pool AND l.owner = v_owner;
                IF FOUND THEN
                    o_kind := 'held';
                    o_addr := v_found;
                ELSE
                    o_kind := 'retry';
                END IF;
                EXIT;
            END LOOP;
        WHEN 'c' THEN
            -- A claim looks for the owner's lease first, so a candidate is left untouched.
            SELECT l.address INTO v_found FROM kws_ipam.leases l
                WHERE l.pool IS NOT DISTINCT FROM v_pool AND l.owner = v_owner;
            IF FOUND THEN
                o_kind := 'held';
                o_addr := v_found;
            ELSE
                v_addr := p_addrs[i];
                DELETE FROM kws_ipam.free_queue f
                    WHERE f.pool = v_pool AND f.address = v_addr AND f.ready_at <= now()
                      AND (p_ids[i] IS NULL OR f.id = p_ids[i])
                    RETURNING f.id, f.ready_at INTO v_id, v_ready;
                IF NOT FOUND THEN
                    o_kind := 'stale';
                ELSE
                    INSERT INTO kws_ipam.leases (pool, address, owner)
                        VALUES (v_pool, v_addr, v_owner) ON CONFLICT DO NOTHING;
                    IF FOUND THEN
                        o_kind := 'new';
                        o_addr := v_addr;
                        v_delta := 1;
                    ELSE
                        IF NOT EXISTS (SELECT 1 FROM kws_ipam.leases l
                                       WHERE l.pool IS NOT DISTINCT FROM v_pool AND l.address = v_addr) THEN
                            -- The owner got a lease concurrently: the entry goes back.
                            INSERT INTO kws_ipam.free_queue (id, pool, address, ready_at)
                                OVERRIDING SYSTEM VALUE VALUES (v_id, v_pool, v_addr, v_ready)
                                ON CONFLICT DO NOTHING;
                            o_kind := 'retry';
                        ELSE
                            -- A stale entry (its address is leased): consumed.
                            o_kind := 'stale';
                        END IF;
                        SELECT l.address INTO v_found FROM kws_ipam.leases l
                            WHERE l.pool IS NOT DISTINCT FROM v_pool AND l.owner = v_owner;
                        IF FOUND THEN
                            o_kind := 'held';
                            o_addr := v_found;
                        END IF;
                    END IF;
                END IF;
            END IF;
        WHEN 's' THEN
            v_addr := p_addrs[i];
            INSERT INTO kws_ipam.leases (pool, address, owner) VALUES (v_pool, v_addr, v_owner)
                ON CONFLICT DO NOTHING;
            IF FOUND THEN
                -- After the insert (which waited for any concurrent release of v_addr), so an
                -- entry that release just committed is seen. An entry another transaction
                -- holds (an allocation that took it, a refill that is adding it) is skipped:
                -- it stays as a stale entry, which allocations consume and a release renews.
                DELETE FROM kws_ipam.free_queue f WHERE f.ctid IN (
                    SELECT q.ctid FROM kws_ipam.free_queue q
                    WHERE q.pool = v_pool AND q.address = v_addr FOR UPDATE SKIP LOCKED);
                o_kind := 'new';
                v_delta := 1;
            ELSE
                SELECT l.owner INTO v_holder FROM kws_ipam.leases l
                    WHERE l.pool IS NOT DISTINCT FROM v_pool AND l.address = v_addr;
                IF FOUND THEN
                    o_kind := 'taken';
                    o_text := v_holder;
                ELSE
                    SELECT l.address INTO v_found FROM kws_ipam.leases l
                        WHERE l.pool IS NOT DISTINCT FROM v_pool AND l.owner = v_owner;
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
            DELETE FROM kws_ipam.leases l WHERE l.pool IS NOT DISTINCT FROM v_pool AND l.address = v_addr
                RETURNING l.owner INTO v_holder;
            IF FOUND THEN
                IF v_qpool IS DISTINCT FROM v_pool THEN
                    SELECT p.quarantine INTO v_quarantine FROM kws_ipam.pools p
                        WHERE p.name = v_pool;
                    v_qpool := v_pool;
                END IF;
                -- A stale entry of the address (fresh, or queued before) is renewed: it
                -- becomes this release's entry, at the end of the FIFO, with its quarantine.
                INSERT INTO kws_ipam.free_queue AS f (pool, address, ready_at)
                    VALUES (v_pool, v_addr, now() + coalesce(v_quarantine, interval '0'))
                    ON CONFLICT (pool, address) DO UPDATE SET id = DEFAULT,
                        ready_at = excluded.ready_at
                    RETURNING f.id INTO o_id;
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
    IF b_pool IS NOT NULL AND b_next <= b_len THEN
        PERFORM kws_ipam.put_back(b_pool, b_addrs[b_next:b_len], b_ids[b_next:b_len],
            b_ready[b_next:b_len]);
    END IF;
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

ALTER FUNCTION kws_ipam.batch(text[], text[], inet[], text[], bigint[])
    SET enable_seqscan = off
    SET jit = off;
