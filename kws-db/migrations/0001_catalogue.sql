-- The provisioner's bookkeeping: one row per database it made or is making. The row is written
-- before the role and the database exist and deleted after they are gone, so every object
-- kws-db made is reachable from here, even after a crash in the middle of an operation.
CREATE TABLE kws_db.databases (
    owner      text        NOT NULL,
    name       text        NOT NULL,
    -- The database's and the role's name on the server (derived from owner and name).
    pg_name    text        NOT NULL UNIQUE,
    -- 'ready' rows are live databases; 'creating' and 'dropping' rows are operations that did
    -- not finish, removed by the next operation for the same owner.
    state      text        NOT NULL CHECK (state IN ('creating', 'ready', 'dropping')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, name)
);
