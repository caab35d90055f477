-- Host grants: a one-time ticket a dashboard session issues for one host (an instance's IDE),
-- and the host-only cookie that host trades it for. A grant lives only as long as its session
-- (ON DELETE CASCADE): logout, a password change and a user's removal end it in their change.
CREATE TABLE kws_accounts.grants (
    hash bytea PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('ticket', 'cookie')),
    session_id uuid NOT NULL REFERENCES kws_accounts.sessions (id) ON DELETE CASCADE,
    user_name text NOT NULL,
    host text NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX grants_session_id ON kws_accounts.grants (session_id);
CREATE INDEX grants_expires_at ON kws_accounts.grants (expires_at);
