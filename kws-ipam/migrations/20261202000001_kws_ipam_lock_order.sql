-- kws-ipam: batches take their locks in one global order, an allocation takes only the free
-- entries it leases, and a free entry another transaction holds is never taken for "none left"
-- (issue 24).
--
-- Before, near exhaustion:
-- - An allocation for an owner that held a lease took a free entry, met the owner's lease at
--   the lease insert, and put the entry back when its run ended: until its batch committed,
--   concurrent allocations skipped the entry (SKIP LOCKED), handed out newer ones first, and
--   answered `empty` (then `Exhausted`) when it was the last.
-- - Two batches that each released an address the other then leased with allocate_specific
--   waited for each other (a lease deleted by one, inserted again by the other) until the
--   deadlock detector (deadlock_timeout, 1 s) rolled one back; meanwhile the entries they held
--   were skipped by everyone.
--
-- Address and owner locks. Every change of an address's lease or free entry is made under a
-- transaction-level advisory lock of the address (kws_ipam.address_key), and every change of an
-- owner's lease under a lock of the owner (kws_ipam.owner_key). Two exceptions, neither of
-- which a batch can be waited on by: the refill only adds fresh entries, under the pool row's
-- lock; reconcile() deletes stale entries without waiting for any lock (SKIP LOCKED).
--
-- A batch runs in three phases:
-- 1. The operations naming an address (release, allocate_specific, claim), sorted by pool and
--    address. Before the first of them runs, the batch takes, in ascending key order, the locks
--    of all their addresses and owners (for a release, of the owner the address is leased to).
--    Each then looks before it changes anything: allocate_specific takes nothing when the
--    address or the owner is leased already, a claim nothing when the owner holds a lease.
-- 2. The allocations, grouped by pool. They never wait for a lock: each takes its owner's lock
--    and the locks of the addresses it takes with pg_try_advisory_xact_lock. An owner holding a
--    lease is answered from it before anything is taken; the others take exactly as many
--    entries as they lease (a stale entry, whose address is leased, is consumed and replaced),
--    so nothing is put back. An entry whose address lock another transaction holds is passed
--    over (the only FIFO exception: that transaction's operation names the address).
-- 3. The usage stripes, pools in name order (unchanged).
--
-- Why no cycle of waits can form between batches (and refills):
-- - A phase-2 allocation waits for nothing; a transaction in phase 3 waits only for stripes
--   held in phase 3, taken in pool order. No cycle goes through either.
-- - A batch taking its phase-1 locks has changed nothing yet: only batches taking their locks
--   wait for it, all in ascending key order, so no cycle goes through it either.
-- - What is left: a phase-1 operation at (pool, address) p, holding its locks, waits only for a
--   refill adding p's fresh entry (or for a phase-2 allocation that locked p's entry row and
--   passed it over), and a refill adding (pool, address) z waits only for a transaction that
--   changed z's entry. A refill adds its chunk in ascending order, so what a phase-1 operation
--   waits for lies below the refill's z, and the transaction the refill waits for has done z
--   and now waits at a later position: positions rise strictly along any chain of waits.
-- Outside transactions (reconcile, an operator's) can still close a cycle; PostgreSQL breaks
-- it, the allocator runs the batch again and counts it (PostgresAllocator::contention).
--
-- New answers: `busy` (o_addr) when an allocation found no entry it could take while ready
-- entries exist that another transaction holds; `wait` (o_text) when an allocation's or a
-- release's owner lock is held by another transaction. The client waits for that lock outside
-- any batch (kws_ipam.wait_for_address, kws_ipam.wait_for_owner) and submits the operation
-- again: `empty` now means that no ready entry exists at all, locked or not.

CREATE FUNCTION kws_ipam.address_key(p_pool text, p_addr inet) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashtextextended('kws_ipam address ' || p_pool || ' ' || host(p_addr), 0)
$$;

CREATE FUNCTION kws_ipam.owner_key(p_pool text, p_owner text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashtextextended('kws_ipam owner ' || p_pool || ' ' || p_owner, 0)
$$;

-- Returns once no other transaction holds the address lock of (p_pool, p_addr) or the row of
-- its free entry. Called in a transaction of its own, which holds nothing else: the lock it
-- takes (shared) ends with it, and what it waits for never waits for it.
CREATE FUNCTION kws_ipam.wait_for_address(p_pool text, p_addr inet) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(kws_ipam.address_key(p_pool, p_addr));
    PERFORM 1 FROM kws_ipam.free_queue f WHERE f.pool = p_pool AND f.address = p_addr
        FOR KEY SHARE;
END $$;

-- Returns once no other transaction holds the owner lock of (p_pool, p_owner); as above.
CREATE FUNCTION kws_ipam.wait_for_owner(p_pool text, p_owner text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(kws_ipam.owner_key(p_pool, p_owner));
END $$;

-- Takes up to p_n ready entries of p_pool for allocations, oldest released first, else fresh
-- ones by address (p_fresh), skipping the rows in p_passed: each row comes locked (SKIP
-- LOCKED), then its address lock is tried; the entries whose lock it got are deleted and
-- returned in order, the others stay locked and come back in passed (the caller keeps them out
-- of its next takes). The try comes after the LIMIT, so only the rows returned are tried
-- whatever the plan.
CREATE FUNCTION kws_ipam.take_entries(
    p_pool text, p_n int, p_fresh boolean, INOUT passed tid[],
    OUT addrs inet[], OUT ids bigint[])
LANGUAGE plpgsql AS $$
DECLARE
    c_tids tid[];
    c_addrs inet[];
    ok tid[] := '{}';
    j int;
BEGIN
    IF p_fresh THEN
        SELECT array_agg(c.t ORDER BY c.a), array_agg(c.a ORDER BY c.a) INTO c_tids, c_addrs
            FROM (SELECT r.ctid AS t, r.address AS a FROM kws_ipam.free_queue r
                  WHERE r.pool = p_pool AND r.ready_at = '-infinity' AND r.ctid <> ALL (passed)
                  ORDER BY r.address LIMIT p_n FOR UPDATE SKIP LOCKED) c;
    ELSE
        SELECT array_agg(c.t ORDER BY c.r, c.i), array_agg(c.a ORDER BY c.r, c.i)
            INTO c_tids, c_addrs
            FROM (SELECT q.ctid AS t, q.address AS a, q.ready_at AS r, q.id AS i
                  FROM kws_ipam.free_queue q
                  WHERE q.pool = p_pool AND q.ready_at > '-infinity' AND q.ready_at <= now()
                    AND q.ctid <> ALL (passed)
                  ORDER BY q.ready_at, q.id LIMIT p_n FOR UPDATE SKIP LOCKED) c;
    END IF;
    FOR j IN 1 .. coalesce(array_length(c_tids, 1), 0) LOOP
        IF pg_try_advisory_xact_lock(kws_ipam.address_key(p_pool, c_addrs[j])) THEN
            ok := ok || c_tids[j];
        ELSE
            passed := passed || c_tids[j];
        END IF;
    END LOOP;
    addrs := '{}';
    ids := '{}';
    IF array_length(ok, 1) > 0 THEN
        WITH t AS (
            DELETE FROM kws_ipam.free_queue f WHERE f.ctid = ANY (ok)
            RETURNING f.id, f.address, f.ready_at)
        -- In the order of the take: released by (ready_at, id), fresh by address.
        SELECT array_agg(t.address ORDER BY t.ready_at, CASE WHEN p_fresh THEN NULL ELSE t.id END,
                   t.address),
               array_agg(t.id ORDER BY t.ready_at, CASE WHEN p_fresh THEN NULL ELSE t.id END,
                   t.address)
            INTO addrs, ids FROM t;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION kws_ipam.batch(
    p_ops text[], p_pools text[], p_addrs inet[], p_owners text[], p_ids bigint[])
RETURNS TABLE (o_kind text, o_addr inet, o_text text, o_id bigint) LANGUAGE plpgsql AS $$
DECLARE
    n_ops int := coalesce(array_length(p_ops, 1), 0);
    -- Each operation's answer, by its place in the batch.
    r_kind text[] := array_fill(NULL::text, ARRAY[n_ops]);
    r_addr inet[] := array_fill(NULL::inet, ARRAY[n_ops]);
    r_text text[] := array_fill(NULL::text, ARRAY[n_ops]);
    r_id bigint[] := array_fill(NULL::bigint, ARRAY[n_ops]);
    named int[];
    allocs int[];
    v_keys bigint[] := '{}';
    v_probe text[] := array_fill(NULL::text, ARRAY[n_ops]);
    i int;
    j int;
    g int;
    h int;
    n_allocs int;
    v_key bigint;
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
    -- Phase 2, per pool: the allocations that need a lease (their places), their owners, and
    -- for an owner asked twice, the place of its first allocation.
    g_need int[];
    g_owners text[];
    g_same int[];
    v_next int;
    v_passed tid[];
    t_addrs inet[];
    t_ids bigint[];
    v_fresh boolean;
    v_busy inet;
    d_pools text[] := '{}';
    d_deltas bigint[] := '{}';
    k int;
    v_stripe smallint := pg_backend_pid() % 32;
BEGIN
    SELECT array_agg(t.n ORDER BY t.pool, t.addr, t.n) INTO named
        FROM unnest(p_ops, p_pools, p_addrs) WITH ORDINALITY AS t(op, pool, addr, n)
        WHERE t.op <> 'a';
    SELECT array_agg(t.n ORDER BY t.pool, t.n) INTO allocs
        FROM unnest(p_ops, p_pools) WITH ORDINALITY AS t(op, pool, n) WHERE t.op = 'a';

    -- Phase 1: the locks of every address and owner named, in ascending key order, then the
    -- operations in address order.
    FOREACH i IN ARRAY coalesce(named, '{}') LOOP
        IF p_ops[i] NOT IN ('r', 's', 'c') THEN
            RAISE EXCEPTION 'kws_ipam.batch: unknown operation %', p_ops[i];
        END IF;
        v_keys := v_keys || kws_ipam.address_key(p_pools[i], p_addrs[i]);
        IF p_ops[i] = 'r' THEN
            SELECT l.owner INTO v_holder FROM kws_ipam.leases l
                WHERE l.pool IS NOT DISTINCT FROM p_pools[i] AND l.address = p_addrs[i];
            IF FOUND THEN
                v_probe[i] := v_holder;
                v_keys := v_keys || kws_ipam.owner_key(p_pools[i], v_holder);
            END IF;
        ELSE
            v_keys := v_keys || kws_ipam.owner_key(p_pools[i], p_owners[i]);
        END IF;
    END LOOP;
    FOREACH v_key IN ARRAY (SELECT coalesce(array_agg(DISTINCT u ORDER BY u), '{}')
                            FROM unnest(v_keys) AS u) LOOP
        PERFORM pg_advisory_xact_lock(v_key);
    END LOOP;

    FOREACH i IN ARRAY coalesce(named, '{}') LOOP
        v_pool := p_pools[i];
        v_addr := p_addrs[i];
        v_owner := p_owners[i];
        v_delta := 0;
        CASE p_ops[i]
        WHEN 'r' THEN
            SELECT l.owner INTO v_holder FROM kws_ipam.leases l
                WHERE l.pool IS NOT DISTINCT FROM v_pool AND l.address = v_addr;
            IF NOT FOUND THEN
                r_kind[i] := 'notallocated';
            ELSIF v_holder IS DISTINCT FROM v_probe[i]
                  AND NOT pg_try_advisory_xact_lock(kws_ipam.owner_key(v_pool, v_holder)) THEN
                -- The address changed hands before its lock was taken, and the new holder's
                -- lock is held elsewhere: nothing done, submitted again after a wait.
                r_kind[i] := 'wait';
                r_text[i] := v_holder;
            ELSE
                DELETE FROM kws_ipam.leases l
                    WHERE l.pool IS NOT DISTINCT FROM v_pool AND l.address = v_addr;
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
                    RETURNING f.id INTO v_id;
                r_kind[i] := 'released';
                r_text[i] := v_holder;
                r_id[i] := v_id;
                v_delta := -1;
            END IF;
        WHEN 's' THEN
            SELECT l.owner INTO v_holder FROM kws_ipam.leases l
                WHERE l.pool IS NOT DISTINCT FROM v_pool AND l.address = v_addr;
            IF FOUND THEN
                r_kind[i] := 'taken';
                r_text[i] := v_holder;
            ELSE
                SELECT l.address INTO v_found FROM kws_ipam.leases l
                    WHERE l.pool IS NOT DISTINCT FROM v_pool AND l.owner = v_owner;
                IF FOUND THEN
                    r_kind[i] := 'owner';
                    r_addr[i] := v_found;
                ELSE
                    -- Its free entry, if any, goes with it (a row locked by an allocation
                    -- that passed it over is waited for: that allocation waits for nothing).
                    DELETE FROM kws_ipam.free_queue f
                        WHERE f.pool = v_pool AND f.address = v_addr;
                    INSERT INTO kws_ipam.leases (pool, address, owner)
                        VALUES (v_pool, v_addr, v_owner) ON CONFLICT DO NOTHING;
                    IF NOT FOUND THEN
                        -- Under both locks nobody else can lease either: a writer outside
                        -- the allocator did. The whole batch runs again.
                        RAISE EXCEPTION 'lease of % (%) in pool % changed under its locks',
                            v_addr, v_owner, v_pool USING ERRCODE = '40001';
                    END IF;
                    r_kind[i] := 'new';
                    v_delta := 1;
                END IF;
            END IF;
        WHEN 'c' THEN
            -- A claim looks for the owner's lease first, so a candidate is left untouched.
            SELECT l.address INTO v_found FROM kws_ipam.leases l
                WHERE l.pool IS NOT DISTINCT FROM v_pool AND l.owner = v_owner;
            IF FOUND THEN
                r_kind[i] := 'held';
                r_addr[i] := v_found;
            ELSE
                DELETE FROM kws_ipam.free_queue f
                    WHERE f.pool = v_pool AND f.address = v_addr AND f.ready_at <= now()
                      AND (p_ids[i] IS NULL OR f.id = p_ids[i])
                    RETURNING f.id INTO v_id;
                IF NOT FOUND THEN
                    r_kind[i] := 'stale';
                ELSE
                    INSERT INTO kws_ipam.leases (pool, address, owner)
                        VALUES (v_pool, v_addr, v_owner) ON CONFLICT DO NOTHING;
                    IF FOUND THEN
                        r_kind[i] := 'new';
                        r_addr[i] := v_addr;
                        v_delta := 1;
                    ELSIF EXISTS (SELECT 1 FROM kws_ipam.leases l
                                  WHERE l.pool IS NOT DISTINCT FROM v_pool
                                    AND l.address = v_addr) THEN
                        -- A stale entry (its address is leased): consumed.
                        r_kind[i] := 'stale';
                    ELSE
                        RAISE EXCEPTION 'lease of % in pool % changed under its locks',
                            v_owner, v_pool USING ERRCODE = '40001';
                    END IF;
                END IF;
            END IF;
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
    END LOOP;

    -- Phase 2: the allocations of each pool. Nothing here waits for a lock.
    n_allocs := coalesce(array_length(allocs, 1), 0);
    g := 1;
    WHILE g <= n_allocs LOOP
        v_pool := p_pools[allocs[g]];
        g_need := '{}';
        g_owners := '{}';
        g_same := array_fill(NULL::int, ARRAY[n_ops]);
        h := g;
        -- Each owner first: its lock, then its lease, before anything is taken.
        WHILE h <= n_allocs AND p_pools[allocs[h]] = v_pool LOOP
            i := allocs[h];
            v_owner := p_owners[i];
            k := array_position(g_owners, v_owner);
            IF k IS NOT NULL THEN
                g_same[i] := g_need[k];
            ELSIF NOT pg_try_advisory_xact_lock(kws_ipam.owner_key(v_pool, v_owner)) THEN
                r_kind[i] := 'wait';
                r_text[i] := v_owner;
            ELSE
                SELECT l.address INTO v_found FROM kws_ipam.leases l
                    WHERE l.pool IS NOT DISTINCT FROM v_pool AND l.owner = v_owner;
                IF FOUND THEN
                    r_kind[i] := 'held';
                    r_addr[i] := v_found;
                ELSE
                    g_need := g_need || i;
                    g_owners := g_owners || v_owner;
                END IF;
            END IF;
            h := h + 1;
        END LOOP;
        -- Then as many entries as leases: released ones oldest first, then fresh ones.
        v_next := 1;
        v_passed := '{}';
        v_fresh := false;
        WHILE v_next <= coalesce(array_length(g_need, 1), 0) LOOP
            SELECT t.passed, t.addrs, t.ids INTO v_passed, t_addrs, t_ids
                FROM kws_ipam.take_entries(v_pool, array_length(g_need, 1) - v_next + 1,
                    v_fresh, v_passed) AS t;
            IF coalesce(array_length(t_addrs, 1), 0) = 0 THEN
                EXIT WHEN v_fresh;
                v_fresh := true;
                CONTINUE;
            END IF;
            FOR j IN 1 .. array_length(t_addrs, 1) LOOP
                i := g_need[v_next];
                -- The lease row is the commit point: UNIQUE (pool, address), (pool, owner).
                INSERT INTO kws_ipam.leases (pool, address, owner)
                    VALUES (v_pool, t_addrs[j], p_owners[i]) ON CONFLICT DO NOTHING;
                IF FOUND THEN
                    r_kind[i] := 'new';
                    r_addr[i] := t_addrs[j];
                    v_next := v_next + 1;
                ELSIF NOT EXISTS (SELECT 1 FROM kws_ipam.leases l
                                  WHERE l.pool IS NOT DISTINCT FROM v_pool
                                    AND l.address = t_addrs[j]) THEN
                    RAISE EXCEPTION 'lease of % in pool % changed under its locks',
                        p_owners[i], v_pool USING ERRCODE = '40001';
                END IF;
                -- Else a stale entry (its address is leased): consumed, and this allocation
                -- takes the next entry.
            END LOOP;
        END LOOP;
        IF v_next > 1 THEN
            k := array_position(d_pools, v_pool);
            IF k IS NULL THEN
                d_pools := d_pools || v_pool;
                d_deltas := d_deltas || (v_next - 1)::bigint;
            ELSE
                d_deltas[k] := d_deltas[k] + (v_next - 1);
            END IF;
        END IF;
        IF v_next <= coalesce(array_length(g_need, 1), 0) THEN
            -- None left to take: `busy` when a ready entry exists that another transaction
            -- holds (or that this one passed over), `empty` when none exists at all.
            v_busy := NULL;
            SELECT q.address INTO v_busy FROM kws_ipam.free_queue q
                WHERE q.pool = v_pool AND q.ready_at > '-infinity' AND q.ready_at <= now()
                ORDER BY q.ready_at, q.id LIMIT 1;
            IF v_busy IS NULL THEN
                SELECT r.address INTO v_busy FROM kws_ipam.free_queue r
                    WHERE r.pool = v_pool AND r.ready_at = '-infinity'
                    ORDER BY r.address LIMIT 1;
            END IF;
            FOR j IN v_next .. array_length(g_need, 1) LOOP
                i := g_need[j];
                IF v_busy IS NOT NULL THEN
                    r_kind[i] := 'busy';
                    r_addr[i] := v_busy;
                ELSIF EXISTS (SELECT 1 FROM kws_ipam.pools p WHERE p.name = v_pool) THEN
                    r_kind[i] := 'empty';
                ELSE
                    r_kind[i] := 'nopool';
                END IF;
            END LOOP;
        END IF;
        -- An owner asked twice: its second allocation answers the first's lease.
        FOR j IN g .. h - 1 LOOP
            i := allocs[j];
            k := g_same[i];
            CONTINUE WHEN k IS NULL;
            r_kind[i] := CASE r_kind[k] WHEN 'new' THEN 'held' ELSE r_kind[k] END;
            r_addr[i] := r_addr[k];
            r_text[i] := r_text[k];
        END LOOP;
        g := h;
    END LOOP;

    -- Phase 3: one counter update per pool, pools in name order. Each goes to a stripe this
    -- transaction can lock without waiting: the session's own (backend pid mod 32) when free,
    -- else the first free one; when all 32 are locked, it waits for its own.
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
    RETURN QUERY SELECT * FROM unnest(r_kind, r_addr, r_text, r_id);
END $$;

-- The settings of 20261126000004_kws_ipam_batch_plans.sql, set again since CREATE OR REPLACE
-- resets them (the takes in take_entries run under them too: they are the batch's).
ALTER FUNCTION kws_ipam.batch(text[], text[], inet[], text[], bigint[])
    SET enable_seqscan = off
    SET jit = off;
