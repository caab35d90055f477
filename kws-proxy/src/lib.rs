//! kws-proxy publishes `<label>.<domain>` routes to instance upstreams through a `ProxyWriter`
//! (nginx: one validated file per route, rolled back on failure). Its `tls` part obtains and
//! renews the wildcard certificate by ACME DNS-01 through a `DnsProvider`.
//!
//! - `MemoryProxy` (always on): the routing rules without a server, for tests of pure logic
//!   and the platform's embedded defaults.
//! - `nginx::NginxProxy` (feature `nginx`): `dir/routes/<host>.conf`, one file per route,
//!   written atomically, checked alone (`nginx -t` on a wrapper), then with the whole
//!   configuration, then reloaded; any failure puts the previous files back and nginx keeps
//!   serving. The operator adds `include <dir>/http.conf;` inside nginx's `http {}` block.
//!   `nginx::LocalNginx` runs a private nginx (own prefix, loopback ports) for tests and
//!   examples.
//! - `caddy::CaddyProxy` (feature `caddy`): the same routes through Caddy's admin API; each
//!   change is validated by Caddy with the whole new configuration and applied atomically.
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
#[cfg(any(feature = "acme", feature = "caddy"))]
mod http;
mod memory;
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
