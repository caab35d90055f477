-- kws-wg: the peer table. The database is the last guard of uniqueness.
CREATE TABLE IF NOT EXISTS kws_wg_peers (
    public_key    TEXT PRIMARY KEY,
    interface     TEXT NOT NULL,
    owner         TEXT NOT NULL,
    name          TEXT NOT NULL,
    ipv4          INET NOT NULL CHECK (family(ipv4) = 4 AND masklen(ipv4) = 32),
    ipv6          INET CHECK (family(ipv6) = 6 AND masklen(ipv6) = 128),
    preshared_key TEXT,
    keepalive     INTEGER CHECK (keepalive BETWEEN 1 AND 65535),
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ,
    enabled       BOOLEAN NOT NULL,
    CONSTRAINT kws_wg_peers_ipv4_key UNIQUE (interface, ipv4),
    CONSTRAINT kws_wg_peers_ipv6_key UNIQUE (interface, ipv6),
    CONSTRAINT kws_wg_peers_name_key UNIQUE (owner, name)
);
CREATE INDEX IF NOT EXISTS kws_wg_peers_interface ON kws_wg_peers (interface, public_key);
