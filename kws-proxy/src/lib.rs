//! kws-proxy publishes `<label>.<domain>` routes to instance upstreams through a `ProxyWriter`
//! (nginx: a route table in nginx's shared memory, changed without a reload, persisted in a
//! journal). Its `tls` part obtains and renews the wildcard certificate by ACME DNS-01 through a
//! `DnsProvider`.
//!
//! - `MemoryProxy` (always on): the routing rules without a server, for tests of pure logic
//!   and the platform's embedded defaults.
//! - `nginx::NginxProxy` (feature `nginx`): one wildcard TLS server and one HTTP server for every
//!   route; the routes are lines of a table in nginx's shared memory (Debian's
//!   `libnginx-mod-http-lua`), read by every worker at request time. A change is checked by kws,
//!   appended to `dir/routes.journal` and flushed, then sent to a loopback admin server that
//!   checks the whole batch again before it applies any of it: no `nginx -t`, no reload, the
//!   same cost at 10 routes and at 10,000; a refusal cuts the batch off the journal and nothing of
//!   it serves. nginx reads the journal when it starts. The operator adds
//!   `include <dir>/http.conf;` inside nginx's `http {}` block. `nginx::LocalNginx` runs a
//!   private nginx (own prefix, loopback ports) for tests and examples.
//! - `caddy::CaddyProxy` (feature `caddy`): the same routes through Caddy's admin API; each
//!   change is validated by Caddy with the whole new configuration and applied atomically, and
//!   persisted in the same journal format; `restore` loads every route again after Caddy
//!   restarts. Each change costs Caddy a pass over its whole configuration, so nginx is the
//!   backend for many routes.
//! - `tls` (feature `acme`): `CertIssuer` (instant-acme) orders `*.<domain>` and `<domain>`,
//!   answers DNS-01 through `Cloudflare` or `ChallTestSrv` (pebble's test DNS), stores key and
//!   chain with mode 0600, renews within a configurable time of expiry and reloads nginx.
//! - `testkit` (feature `testkit`): the conformance suite every `ProxyWriter` runs.
//!
//! ```
//! use kws_proxy::{MemoryProxy, ProxyWriter, Route, RoutePolicy};
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let policy = RoutePolicy::new("example.test".parse()?, ["10.0.0.0/8".parse()?]);
//! let proxy = MemoryProxy::new(policy);
//! let host = proxy.policy().host("app1.example.test")?;
//! proxy.publish(Route::app(host, "10.0.0.5:8080".parse()?)).await?;
//! assert_eq!(proxy.routes().await?.len(), 1);
//! assert!(proxy.policy().host("a;b.example.test").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "caddy")]
pub mod caddy;
mod certfiles;
mod error;
#[cfg(any(feature = "nginx", feature = "caddy"))]
mod files;
#[cfg(any(feature = "acme", feature = "caddy", feature = "nginx"))]
mod http;
#[cfg(any(feature = "nginx", feature = "caddy"))]
mod journal;
mod memory;

/// The default size of nginx's route table, 32 MiB: room for about 190,000 routes (10,010
/// routes took 1.5 to 1.7 MB, by the length of their names). Pages nginx never writes take no
/// memory. Outside the `nginx` feature so a config can be read without it.
pub const DEFAULT_ROUTE_TABLE_BYTES: usize = 32 << 20;
#[cfg(feature = "nginx")]
pub mod nginx;
mod route;
mod table;
#[cfg(feature = "testkit")]
pub mod testkit;
#[cfg(feature = "acme")]
pub mod tls;
mod writer;

pub use certfiles::CertFiles;
pub use error::{CheckStage, ProxyError};
pub use memory::MemoryProxy;
pub use route::{Route, RouteKind, RoutePolicy};
pub use writer::{ProxyWriter, ProxyWriterExt};
