//! kws-proxy publishes `<label>.<domain>` routes to instance upstreams through a `ProxyWriter`
//! (nginx: one validated file per route, rolled back on failure). Its `tls` part obtains and
//! renews the wildcard certificate by ACME DNS-01 through a `DnsProvider`.
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

mod certfiles;
mod error;
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
