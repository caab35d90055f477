-- kws-ipam on PostgreSQL. The lease row is the commit point: UNIQUE (pool, address) is the last
-- guard against a duplicate, UNIQUE (pool, owner) makes allocate idempotent per owner.
-- Released addresses wait in free_queue (FIFO by ready_at, then id); fresh addresses are moved
-- from the persisted cursor (pools.cursor_*) into `fresh` in chunks, so the pool row is locked
-- once per chunk, never once per allocation.
CREATE SCHEMA IF NOT EXISTS kws_ipam;

CREATE TABLE kws_ipam.pools (
    name text PRIMARY KEY,
    prefix cidr NOT NULL,
    spec jsonb NOT NULL,
    quarantine interval NOT NULL,
    cursor_segment integer NOT NULL,
    cursor_next inet,
    CONSTRAINT pools_disjoint EXCLUDE USING gist (prefix inet_ops WITH &&)
);

CREATE TABLE kws_ipam.leases (
    pool text NOT NULL,
    address inet NOT NULL,
    owner text NOT NULL,
    CONSTRAINT leases_address UNIQUE (pool, address),
    CONSTRAINT leases_owner UNIQUE (pool, owner)
);

CREATE TABLE kws_ipam.free_queue (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pool text NOT NULL,
    address inet NOT NULL,
    ready_at timestamptz NOT NULL,
    CONSTRAINT free_queue_address UNIQUE (pool, address)
);
CREATE INDEX free_queue_order ON kws_ipam.free_queue (pool, ready_at, id);

CREATE TABLE kws_ipam.fresh (
    pool text NOT NULL,
    address inet NOT NULL,
    PRIMARY KEY (pool, address)
);

-- Leases p_addr to p_owner, the commit point of allocate and claim. True when the lease row was
-- written; false when p_addr is leased already (the queue entry was stale). Raises 40001 when
-- p_owner got a lease in the pool concurrently (UNIQUE (pool, owner)): the caller retries.
CREATE FUNCTION kws_ipam.insert_lease(p_pool text, p_addr inet, p_owner text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO kws_ipam.leases (pool, address, owner) VALUES (p_pool, p_addr, p_owner)
        ON CONFLICT DO NOTHING;
    IF FOUND THEN
        RETURN true;
    END IF;
    IF EXISTS (SELECT 1 FROM kws_ipam.leases l WHERE l.pool = p_pool AND l.owner = p_owner) THEN
        RAISE EXCEPTION 'owner % got a lease in pool % concurrently', p_owner, p_pool
            USING ERRCODE = '40001';
    END IF;
    RETURN false;
END $$;

-- Takes the oldest ready released address, else a fresh one, and leases it to p_owner.
-- Outcomes: 'held' (p_owner's existing lease), 'new', 'empty' (refill the cursor chunk, or the
-- pool is exhausted), 'nopool'. Raises 40001 when p_owner got a lease concurrently (retry).
CREATE FUNCTION kws_ipam.allocate(p_pool text, p_owner text)
RETURNS TABLE (address inet, outcome text) LANGUAGE plpgsql AS $$
DECLARE
    v_addr inet;
BEGIN
    SELECT l.address INTO v_addr FROM kws_ipam.leases l
        WHERE l.pool = p_pool AND l.owner = p_owner;
    IF FOUND THEN
        RETURN QUERY SELECT v_addr, 'held'::text;
        RETURN;
    END IF;
    LOOP
        DELETE FROM kws_ipam.free_queue f WHERE f.id = (
            SELECT q.id FROM kws_ipam.free_queue q
            WHERE q.pool = p_pool AND q.ready_at <= now()
            ORDER BY q.ready_at, q.id LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING f.address INTO v_addr;
        IF NOT FOUND THEN
            DELETE FROM kws_ipam.fresh f WHERE f.pool = p_pool AND f.address = (
                SELECT r.address FROM kws_ipam.fresh r WHERE r.pool = p_pool
                ORDER BY r.address LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING f.address INTO v_addr;
        END IF;
        IF NOT FOUND THEN
            IF NOT EXISTS (SELECT 1 FROM kws_ipam.pools p WHERE p.name = p_pool) THEN
                RETURN QUERY SELECT NULL::inet, 'nopool'::text;
            ELSE
                RETURN QUERY SELECT NULL::inet, 'empty'::text;
            END IF;
            RETURN;
        END IF;
        IF kws_ipam.insert_lease(p_pool, v_addr, p_owner) THEN
            RETURN QUERY SELECT v_addr, 'new'::text;
            RETURN;
        END IF;
        -- The entry was stale (its address is leased): it is consumed; take the next one.
    END LOOP;
END $$;

-- Leases p_addr (taken from the free queue, a PgRedis fast-path candidate) to p_owner.
-- Outcomes: 'held' (p_owner's existing lease, p_addr untouched), 'new', 'stale' (p_addr is not
-- ready in the free queue). Raises 40001 on a concurrent lease of the same owner.
CREATE FUNCTION kws_ipam.claim(p_pool text, p_addr inet, p_owner text)
RETURNS TABLE (address inet, outcome text) LANGUAGE plpgsql AS $$
DECLARE
    v_addr inet;
BEGIN
    SELECT l.address INTO v_addr FROM kws_ipam.leases l
        WHERE l.pool = p_pool AND l.owner = p_owner;
    IF FOUND THEN
        RETURN QUERY SELECT v_addr, 'held'::text;
        RETURN;
    END IF;
    DELETE FROM kws_ipam.free_queue f
        WHERE f.pool = p_pool AND f.address = p_addr AND f.ready_at <= now();
    IF NOT FOUND THEN
        RETURN QUERY SELECT p_addr, 'stale'::text;
        RETURN;
    END IF;
    IF kws_ipam.insert_lease(p_pool, p_addr, p_owner) THEN
        RETURN QUERY SELECT p_addr, 'new'::text;
        RETURN;
    END IF;
    RETURN QUERY SELECT p_addr, 'stale'::text;
END $$;

-- Leases exactly p_addr to p_owner. Returns the holder of p_addr and the address p_owner
-- holds: (p_owner, p_addr) on success; (other, p_addr) when another owner holds it;
-- (p_owner, other address) when p_owner holds another address.
CREATE FUNCTION kws_ipam.allocate_specific(p_pool text, p_addr inet, p_owner text)
RETURNS TABLE (holder text, held inet) LANGUAGE plpgsql AS $$
DECLARE
    v_owner text;
    v_addr inet;
BEGIN
    INSERT INTO kws_ipam.leases (pool, address, owner) VALUES (p_pool, p_addr, p_owner)
        ON CONFLICT DO NOTHING;
    IF FOUND THEN
        -- After the insert (which waited for any concurrent release of p_addr), so a queue
        -- entry that release just committed is seen and removed.
        DELETE FROM kws_ipam.free_queue f WHERE f.pool = p_pool AND f.address = p_addr;
        DELETE FROM kws_ipam.fresh f WHERE f.pool = p_pool AND f.address = p_addr;
        RETURN QUERY SELECT p_owner, p_addr;
        RETURN;
    END IF;
    SELECT l.owner INTO v_owner FROM kws_ipam.leases l
        WHERE l.pool = p_pool AND l.address = p_addr;
    IF FOUND THEN
        RETURN QUERY SELECT v_owner, p_addr;
        RETURN;
    END IF;
    SELECT l.address INTO v_addr FROM kws_ipam.leases l
        WHERE l.pool = p_pool AND l.owner = p_owner;
    IF FOUND THEN
        RETURN QUERY SELECT p_owner, v_addr;
        RETURN;
    END IF;
    RAISE EXCEPTION 'lease of % in pool % changed concurrently', p_addr, p_pool
        USING ERRCODE = '40001';
END $$;

-- Ends the lease on p_addr and queues the address; returns its owner, NULL when not leased.
CREATE FUNCTION kws_ipam.release(p_pool text, p_addr inet)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_owner text;
BEGIN
    DELETE FROM kws_ipam.leases l WHERE l.pool = p_pool AND l.address = p_addr
        RETURNING l.owner INTO v_owner;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO kws_ipam.free_queue (pool, address, ready_at)
        SELECT p_pool, p_addr, now() + p.quarantine FROM kws_ipam.pools p WHERE p.name = p_pool
        ON CONFLICT (pool, address) DO NOTHING;
    RETURN v_owner;
END $$;
