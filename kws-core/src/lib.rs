//! kws-core is the vocabulary every kws crate shares: validated names (`DnsLabel`, `Domain`,
//! `Hostname`, `IfName`) and identifiers (`OwnerId`, `InstanceId`, `JobId`), with no I/O.
//! Parse, don't validate: once a user string has one of these types, every later layer
//! (hostnames, file names, container names, nftables comments, SQL identifiers) can trust it.
//!
//! ```
//! use kws_core::{DnsLabel, Domain, Hostname};
//!
//! let app: DnsLabel = "App1".parse()?;
//! assert_eq!(app.as_str(), "app1");
//! let domain: Domain = "kwscloud.in".parse()?;
//! let host = Hostname::new(app, &domain)?;
//! assert_eq!(host.to_string(), "app1.kwscloud.in");
//! assert!("a;b".parse::<DnsLabel>().is_err());
//! # Ok::<(), kws_core::ParseError>(())
//! ```

mod domain;
mod error;
mod ids;
mod ifname;
mod label;

pub use domain::{Domain, Hostname};
pub use error::{ParseError, Rule};
pub use ids::{InstanceId, JobId, OwnerId};
pub use ifname::IfName;
pub use label::DnsLabel;
