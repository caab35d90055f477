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
-- transaction-level advisory lock of the address (kws_ipam.address_key), and every lease insert
-- under a lock of its owner (kws_ipam.owner_key), after which the inserter looks for the owner's
-- lease and inserts only when it sees none. A lease of that owner can only appear under the
-- lock it holds, so it never meets one being inserted or deleted by another transaction: a
-- release needs no owner lock. Two exceptions, neither of which waits for a batch in a way that
-- closes a cycle: the refill only adds fresh entries, under the pool row's lock; reconcile()
-- deletes stale entries without waiting for any lock (SKIP LOCKED).
--
-- A batch runs in three phases:
-- 1. The operations naming an address (release, allocate_specific, claim), sorted by pool and
--    address. Before the first of them runs, the batch takes, in ascending key order, the locks
--    of all their addresses and of the owners allocate_specific and claim name. Each then looks
--    before it changes anything: allocate_specific takes nothing when the address or the owner
--    is leased already, a claim nothing when the owner holds a lease.
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
--   passed it over): whoever else changes p's lease or entry holds p's lock, and its lease
--   insert meets no other transaction's lease of its owner (above). A refill adding
--   (pool, address) z waits only for a transaction that changed z's entry. A refill adds its
--   chunk in ascending order, so what a phase-1 operation waits for lies below the refill's z,
--   and the transaction the refill waits for has done z and now waits at a later position:
--   positions rise strictly along any chain of waits.
-- Outside transactions (an operator's) can still close a cycle; PostgreSQL breaks it, the
-- allocator runs the batch again and counts it (PostgresAllocator::contention).
--
-- New answers: `busy` (o_addr) when an allocation found no entry it could take while ready
-- entries exist that another transaction holds; `wait` (o_text) when an allocation's owner
-- lock is held by another transaction. The client waits for that lock outside any batch
-- (kws_ipam.wait_for_address, kws_ipam.wait_for_owner) and submits the operation again:
-- `empty` now means that no ready entry exists at all, locked or not.

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
    -- Places of the operations naming an address, in (pool, address) order, and of the
    -- allocations, by pool.
    named int[];
    allocs int[];
    v_locked bigint;
    i int;
    j int;
    n int;
    g int;
    h int;
    v_pool text;
    v_addr inet;
    v_owner text;
    v_found inet;
    v_holder text;
    v_id bigint;
    v_delta int;
    v_qpool text;
    v_quarantine interval;
    -- Phase 2, per pool: the allocations that got their owner's lock (places), then those that
    -- need a lease and their owners; for an owner asked twice, the place of its first one.
    g_locked int[];
    g_held inet[];
    g_need int[];
    g_owners text[];
    g_same int[];
    v_need int;
    v_next int;
    v_want int;
    v_fresh boolean;
    v_passed tid[];
    v_got int;
    t_addrs inet[];
    v_busy inet;
    d_pools text[] := '{}';
    d_deltas bigint[] := '{}';
    k int;
    v_stripe smallint := pg_backend_pid() % 32;
BEGIN
    IF p_ops <@ ARRAY['a'] AND p_pools <@ p_pools[1:1] THEN
        -- Allocations in one pool, the common batch: nothing to sort.
        allocs := '{}';
        FOR i IN 1 .. n_ops LOOP
            allocs := allocs || i;
        END LOOP;
    ELSE
        -- The order of each phase, then phase 1's locks: every address named, and the owner of
        -- every allocate_specific and claim, in ascending key order (the sorted CTE feeds them
        -- one by one).
        WITH t AS MATERIALIZED (
            SELECT t.op, t.pool, t.addr, t.n
                FROM unnest(p_ops, p_pools, p_addrs) WITH ORDINALITY AS t(op, pool, addr, n)),
        k AS MATERIALIZED (
            SELECT DISTINCT a.lock_key FROM (
                SELECT kws_ipam.address_key(t.pool, t.addr) FROM t WHERE t.op <> 'a'
                UNION ALL
                SELECT kws_ipam.owner_key(t.pool, p_owners[t.n::int])
                    FROM t WHERE t.op IN ('s', 'c')) AS a(lock_key)
            WHERE a.lock_key IS NOT NULL ORDER BY a.lock_key)
        SELECT (SELECT array_agg(t.n ORDER BY t.pool, t.addr, t.n) FROM t WHERE t.op <> 'a'),
               (SELECT array_agg(t.n ORDER BY t.pool, t.n) FROM t WHERE t.op = 'a'),
               (SELECT count(*) FROM (SELECT pg_advisory_xact_lock(k.lock_key) FROM k) AS z)
            INTO named, allocs, v_locked;
    END IF;

    -- Phase 1: with its locks taken, the operations naming an address, in address order.
    FOREACH i IN ARRAY coalesce(named, '{}') LOOP
        IF p_ops[i] NOT IN ('r', 's', 'c') THEN
            RAISE EXCEPTION 'kws_ipam.batch: unknown operation %', p_ops[i];
        END IF;
    END LOOP;
    FOR n IN 1 .. coalesce(array_length(named, 1), 0) LOOP
        i := named[n];
        v_pool := p_pools[i];
        v_addr := p_addrs[i];
        v_owner := p_owners[i];
        v_delta := 0;
        CASE p_ops[i]
        WHEN 'r' THEN
            DELETE FROM kws_ipam.leases l
                WHERE l.pool IS NOT DISTINCT FROM v_pool AND l.address = v_addr
                RETURNING l.owner INTO v_holder;
            IF NOT FOUND THEN
                r_kind[i] := 'notallocated';
            ELSE
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
    g := 1;
    WHILE g <= coalesce(array_length(allocs, 1), 0) LOOP
        v_pool := p_pools[allocs[g]];
        g_locked := '{}';
        g_owners := '{}';
        g_same := array_fill(NULL::int, ARRAY[n_ops]);
        h := g;
        -- Each owner's lock first (an owner asked twice answers as its first allocation)...
        WHILE h <= array_length(allocs, 1) AND p_pools[allocs[h]] = v_pool LOOP
            i := allocs[h];
            k := array_position(g_owners, p_owners[i]);
            IF k IS NOT NULL THEN
                g_same[i] := g_locked[k];
            ELSIF pg_try_advisory_xact_lock(kws_ipam.owner_key(v_pool, p_owners[i])) THEN
                g_locked := g_locked || i;
                g_owners := g_owners || p_owners[i];
            ELSE
                r_kind[i] := 'wait';
                r_text[i] := p_owners[i];
            END IF;
            h := h + 1;
        END LOOP;
        -- ... then their leases, in one look taken after the locks: an owner holding one is
        -- answered from it before anything is taken.
        SELECT array_agg(l.address ORDER BY x.n) INTO g_held
            FROM unnest(g_owners) WITH ORDINALITY AS x(o, n)
            LEFT JOIN LATERAL (SELECT l.address FROM kws_ipam.leases l
                               WHERE l.pool IS NOT DISTINCT FROM v_pool AND l.owner = x.o) AS l
                ON true;
        g_need := '{}';
        FOR j IN 1 .. coalesce(array_length(g_locked, 1), 0) LOOP
            i := g_locked[j];
            IF g_held[j] IS NOT NULL THEN
                r_kind[i] := 'held';
                r_addr[i] := g_held[j];
            ELSE
                g_need := g_need || i;
            END IF;
        END LOOP;
        -- Then as many entries as leases: released ones oldest first, then fresh ones. Each
        -- comes locked (SKIP LOCKED), then its address lock is tried (after the LIMIT, in a
        -- materialized CTE, so only the rows taken are tried whatever the plan), and the rows
        -- whose lock it got are deleted. A row whose address lock another transaction holds
        -- stays locked here, passed over and kept out of the next takes.
        v_need := coalesce(array_length(g_need, 1), 0);
        v_next := 1;
        v_passed := '{}';
        v_fresh := false;
        WHILE v_next <= v_need LOOP
            v_want := v_need - v_next + 1;
            IF v_fresh THEN
                WITH c AS MATERIALIZED (
                    SELECT s.t, s.a, pg_try_advisory_xact_lock(kws_ipam.address_key(v_pool, s.a)) AS ok
                    FROM (SELECT r.ctid AS t, r.address AS a FROM kws_ipam.free_queue r
                          WHERE r.pool = v_pool AND r.ready_at = '-infinity'
                            AND r.ctid <> ALL (v_passed)
                          ORDER BY r.address LIMIT v_want FOR UPDATE SKIP LOCKED) AS s),
                d AS (DELETE FROM kws_ipam.free_queue f
                      WHERE f.ctid = ANY (ARRAY(SELECT c.t FROM c WHERE c.ok)))
                SELECT coalesce(array_agg(c.a ORDER BY c.a) FILTER (WHERE c.ok), '{}'),
                       v_passed || coalesce(array_agg(c.t) FILTER (WHERE NOT c.ok), '{}'),
                       count(*)
                    INTO t_addrs, v_passed, v_got FROM c;
            ELSE
                WITH c AS MATERIALIZED (
                    SELECT s.t, s.a, s.r, s.i,
                           pg_try_advisory_xact_lock(kws_ipam.address_key(v_pool, s.a)) AS ok
                    FROM (SELECT q.ctid AS t, q.address AS a, q.ready_at AS r, q.id AS i
                          FROM kws_ipam.free_queue q
                          WHERE q.pool = v_pool AND q.ready_at > '-infinity'
                            AND q.ready_at <= now() AND q.ctid <> ALL (v_passed)
                          ORDER BY q.ready_at, q.id LIMIT v_want FOR UPDATE SKIP LOCKED) AS s),
                d AS (DELETE FROM kws_ipam.free_queue f
                      WHERE f.ctid = ANY (ARRAY(SELECT c.t FROM c WHERE c.ok)))
                SELECT coalesce(array_agg(c.a ORDER BY c.r, c.i) FILTER (WHERE c.ok), '{}'),
                       v_passed || coalesce(array_agg(c.t) FILTER (WHERE NOT c.ok), '{}'),
                       count(*)
                    INTO t_addrs, v_passed, v_got FROM c;
            END IF;
            FOR j IN 1 .. coalesce(array_length(t_addrs, 1), 0) LOOP
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
            -- Fewer rows than asked: none of this kind is left to take.
            IF v_got < v_want THEN
                EXIT WHEN v_fresh;
                v_fresh := true;
            END IF;
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
        IF v_next <= v_need THEN
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
            FOR j IN v_next .. v_need LOOP
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
        -- An owner asked twice: its second allocation answers as the first.
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
    FOR i IN 1 .. n_ops LOOP
        o_kind := r_kind[i];
        o_addr := r_addr[i];
        o_text := r_text[i];
        o_id := r_id[i];
        RETURN NEXT;
    END LOOP;
END $$;

-- The settings of 20261126000004_kws_ipam_batch_plans.sql, set again since CREATE OR REPLACE
-- resets them, and generic plans always: statements with a LIMIT or arrays as parameters
-- priced their custom plans far below the generic one, so PL/pgSQL planned them again at
-- every call (GetCachedPlan at 15% of a batch's CPU in the mixed loop, under 2% with this).
-- Every statement's generic plan is an index or TID scan under these settings
-- (tests/postgres.rs checks the takes, the lease probes and the refill).
ALTER FUNCTION kws_ipam.batch(text[], text[], inet[], text[], bigint[])
    SET enable_seqscan = off
    SET jit = off
    SET plan_cache_mode = force_generic_plan;
