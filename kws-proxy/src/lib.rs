//! kws-proxy publishes `<label>.<domain>` routes to instance upstreams through a `ProxyWriter`
//! (nginx: one validated file per route, rolled back on failure). Its `tls` part obtains and
//! renews the wildcard certificate by ACME DNS-01 through a `DnsProvider`.
