-- The Platform's store of record (kws::platform::store::PostgresStore), in its own schema
-- `kws_platform`, whose `_sqlx_migrations` keeps this folder's history apart from the other
-- crates' migrations in the same database.
--
-- The constraints are the last guard: the store checks names, unique keys and quotas in the
-- transaction that inserts, and a race that slips past those checks still ends on a UNIQUE or
-- a foreign key. Names are byte-ordered (COLLATE "C"), as the Rust types order them, so pages
-- are in the same order on every backend.

CREATE TABLE kws_platform.tenants (
    id           TEXT COLLATE "C" PRIMARY KEY,
    display_name TEXT NOT NULL,
    -- `Quotas` as JSON: u64 limits, read and checked by the store (one check for every backend).
    quotas       JSON NOT NULL,
    version      BIGINT NOT NULL CHECK (version >= 1),
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE kws_platform.users (
    name         TEXT COLLATE "C" PRIMARY KEY,
    display_name TEXT NOT NULL,
    operator     BOOLEAN NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE kws_platform.members (
    tenant    TEXT COLLATE "C" NOT NULL
              CONSTRAINT members_tenant_fkey REFERENCES kws_platform.tenants (id) ON DELETE CASCADE,
    user_name TEXT COLLATE "C" NOT NULL
              CONSTRAINT members_user_fkey REFERENCES kws_platform.users (name) ON DELETE CASCADE,
    role      TEXT NOT NULL CHECK (role IN ('viewer', 'member', 'admin')),
    since     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, user_name)
);
-- `memberships(user)` and the cascade from users.
CREATE INDEX members_by_user ON kws_platform.members (user_name, tenant);

CREATE TABLE kws_platform.objects (
    id          UUID PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('instance', 'app', 'device', 'database', 'job')),
    -- No cascade: a tenant goes only once it owns nothing but jobs, which go with it.
    tenant      TEXT COLLATE "C" NOT NULL
                CONSTRAINT objects_tenant_fkey REFERENCES kws_platform.tenants (id),
    name        TEXT COLLATE "C" NOT NULL,
    unique_key  TEXT,
    cpu_millis  BIGINT NOT NULL CHECK (cpu_millis >= 0),
    memory_mb   BIGINT NOT NULL CHECK (memory_mb >= 0),
    -- JSON, not JSONB: a spec keeps any JSON value, a "\u0000" in a string included.
    spec        JSON NOT NULL,
    status      JSON NOT NULL,
    observed_at TIMESTAMPTZ,
    origin      UUID,
    -- When its removal began: nothing makes it again from then on.
    deleting_at TIMESTAMPTZ,
    version     BIGINT NOT NULL CHECK (version >= 1),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT objects_name_key UNIQUE (tenant, kind, name),
    CONSTRAINT objects_unique_key UNIQUE (unique_key)
);
-- Pages of one kind over every tenant: keyset on (tenant, name) after the kind. Pages of one
-- tenant, usage and delete_tenant use objects_name_key.
CREATE INDEX objects_by_kind ON kws_platform.objects (kind, tenant, name);

-- No foreign key to tenants: operations stay as history when their tenant goes (a tenant's
-- deletion is itself an operation, saved after the tenant is gone).
CREATE TABLE kws_platform.operations (
    id               UUID PRIMARY KEY,
    tenant           TEXT COLLATE "C" NOT NULL,
    kind             TEXT NOT NULL,
    target           TEXT NOT NULL,
    idempotency_key  TEXT,
    request_hash     TEXT NOT NULL,
    request          JSON NOT NULL,
    state            TEXT NOT NULL
                     CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'compensated')),
    steps            JSON NOT NULL,
    error            TEXT,
    result           JSON NOT NULL,
    deadline         TIMESTAMPTZ NOT NULL,
    cancel_requested BOOLEAN NOT NULL,
    holder           TEXT,
    lease_until      TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    version          BIGINT NOT NULL CHECK (version >= 1)
);
-- A tenant's operations, newest (highest UUIDv7) first.
CREATE INDEX operations_by_tenant ON kws_platform.operations (tenant, id);
-- claim_expired and renew_operations look only at unfinished operations.
CREATE INDEX operations_unfinished_lease ON kws_platform.operations (lease_until)
    WHERE state IN ('pending', 'running');
CREATE INDEX operations_unfinished_holder ON kws_platform.operations (holder)
    WHERE state IN ('pending', 'running');

-- The idempotency keys a tenant has used, apart from the operations: the operations outlive
-- their tenant, but a tenant made again under the same id starts with no keys.
CREATE TABLE kws_platform.idempotency_keys (
    tenant    TEXT COLLATE "C" NOT NULL,
    key       TEXT NOT NULL,
    operation UUID NOT NULL
              CONSTRAINT idempotency_keys_operation_fkey
              REFERENCES kws_platform.operations (id) ON DELETE CASCADE,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (tenant, key)
);
