//! kws: a self-hosted cloud platform as a family of crates. This facade re-exports each
//! capability crate behind a feature of the same name; the `Platform` that composes them
//! lives in [`platform`].
//!
//! | module | crate | job |
//! |---|---|---|
//! | [`core`] | kws-core | validated names and ids |
//! | `ipam` | kws-ipam | IP allocation in constant time |
//! | `wg` | kws-wg | WireGuard peers, devices, client configs |
//! | `hostnet` | kws-hostnet | bridges, forwarding, NAT, isolation in nftables |
//! | `runtime` | kws-runtime | Docker instances with limits, hardening and owner networks |
//! | `exec` | kws-exec | the code-execution engine: sandbox pools, supervisor, queues, limits |
//! | `proxy` | kws-proxy | nginx routes and ACME wildcard certificates |
//! | `db` | kws-db | managed PostgreSQL databases with scoped roles |
//! | `platform` | (here) | the crates composed into user flows, with a store of record |
//! | `http`, `api`, `web`, `daemon` | (here, feature `server`) | `kwsd`: serving, the REST API, the dashboard, the daemon |
//! | `cli` | (here, feature `cli`) | `kws`, the command-line client of the API |

pub use kws_core as core;
#[cfg(feature = "db")]
pub use kws_db as db;
#[cfg(feature = "exec")]
pub use kws_exec as exec;
#[cfg(feature = "hostnet")]
pub use kws_hostnet as hostnet;
#[cfg(feature = "ipam")]
pub use kws_ipam as ipam;
#[cfg(feature = "proxy")]
pub use kws_proxy as proxy;
#[cfg(feature = "runtime")]
pub use kws_runtime as runtime;
#[cfg(feature = "wg")]
pub use kws_wg as wg;
#[cfg(feature = "server")]
pub mod api;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "server")]
pub mod daemon;
#[cfg(feature = "server")]
pub mod gate;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "platform")]
pub mod platform;
#[cfg(feature = "server")]
pub mod web;
