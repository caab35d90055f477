-- kws-accounts on PostgreSQL: password hashes, dashboard sessions and API tokens. Secrets are
-- kept only as SHA-256 digests (bytea, 32 bytes); a digest names at most one row (UNIQUE).
-- User names are the Platform's login names (DNS labels, lowercase); there are no foreign keys
-- to other crates' schemas.
CREATE SCHEMA IF NOT EXISTS kws_accounts;

CREATE TABLE kws_accounts.passwords (
    user_name text PRIMARY KEY,
    -- An argon2id PHC string.
    phc text NOT NULL
);

CREATE TABLE kws_accounts.sessions (
    id uuid PRIMARY KEY,
    user_name text NOT NULL,
    hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX sessions_user_name ON kws_accounts.sessions (user_name);
CREATE INDEX sessions_expires_at ON kws_accounts.sessions (expires_at);

CREATE TABLE kws_accounts.tokens (
    id uuid PRIMARY KEY,
    user_name text NOT NULL,
    name text NOT NULL,
    hash bytea NOT NULL UNIQUE,
    -- Scope names separated by commas, as TokenScopes displays them ("read,write").
    scopes text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz
);

-- tokens_of: the user's tokens, newest first.
CREATE INDEX tokens_user_name ON kws_accounts.tokens (user_name, created_at DESC, id DESC);
