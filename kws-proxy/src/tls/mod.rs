//! Wildcard certificates by ACME DNS-01: `CertIssuer` (instant-acme) orders `*.<domain>` and
//! `<domain>`, answers the challenges through a `DnsProvider` (Cloudflare, or
//! pebble-challtestsrv in tests), stores key and chain with mode 0600, renews within a
//! configurable number of days of expiry and then reloads the proxy.

mod challtestsrv;
mod cloudflare;
mod dns;
mod issuer;
mod store;

pub use challtestsrv::ChallTestSrv;
pub use cloudflare::{CLOUDFLARE_API, Cloudflare};
pub use dns::{ChallengeName, DnsError, DnsProvider, TxtRecord};
pub use issuer::{CertIssuer, CertReload, IssuerConfig, RenewOutcome};
pub use store::CertInfo;

use std::path::PathBuf;

/// Why a certificate could not be issued, stored or renewed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The ACME server refused or failed a step.
    #[error("ACME {step}: {source}")]
    Acme {
        /// The step, e.g. "new order".
        step: &'static str,
        /// The cause.
        #[source]
        source: instant_acme::Error,
    },
    /// The order ended in a state other than the one the step needs.
    #[error("ACME order for {domain} is {status} at {step}")]
    Order {
        /// The domain.
        domain: String,
        /// The step.
        step: &'static str,
        /// The order's or authorization's status.
        status: String,
    },
    /// The DNS provider failed.
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A stored or issued certificate that cannot be parsed.
    #[error("certificate {path}: {why}")]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The proxy could not load the new certificate.
    #[error("reloading the proxy after the new certificate: {0}")]
    Reload(#[source] crate::ProxyError),
}
