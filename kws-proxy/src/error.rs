//! The crate's one error type for routes.

use std::{net::SocketAddr, path::PathBuf};

use ipnet::IpNet;
use kws_core::{Domain, Hostname, ParseError};

/// Which check of the proxy refused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckStage {
    /// nginx's route table (its admin server) refused the batch: a line it does not accept, or
    /// no room left in the table. Nothing of the batch serves.
    RouteTable,
    /// The whole configuration (`nginx -t`, or Caddy's validation of its new configuration).
    WholeConfig,
}

/// Why a route could not be published, unpublished or listed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// A hostname string that is not one valid label under the platform domain.
    #[error("invalid route host: {0}")]
    InvalidHost(#[source] ParseError),
    /// The host is not under the platform domain.
    #[error("host {host} is not under the platform domain {domain}")]
    OutsideDomain {
        /// The refused host.
        host: Hostname,
        /// The platform domain.
        domain: Domain,
    },
    /// The upstream is outside every allowed subnet.
    #[error("upstream {upstream} is outside the allowed subnets {allowed:?}")]
    UpstreamNotAllowed {
        /// The refused upstream.
        upstream: SocketAddr,
        /// The subnets upstreams must lie in.
        allowed: Vec<IpNet>,
    },
    /// An upstream no proxy can dial: port 0, an unspecified, multicast or broadcast address,
    /// or an IPv6 address with a zone index.
    #[error("upstream {upstream} cannot be proxied to: {why}")]
    InvalidUpstream {
        /// The refused upstream.
        upstream: SocketAddr,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Another route already serves this host.
    #[error("host {host} is already published (to {existing})")]
    DuplicateHost {
        /// The host.
        host: Hostname,
        /// The upstream of the route that holds it.
        existing: SocketAddr,
    },
    /// No route serves this host.
    #[error("host {host} is not published")]
    NotFound {
        /// The host.
        host: Hostname,
    },
    /// The proxy refused the change of `host`; nothing was changed.
    #[error("the proxy refused the change of {host} ({stage:?}): {output}")]
    Rejected {
        /// The host whose change was refused.
        host: Hostname,
        /// The check that failed.
        stage: CheckStage,
        /// What the proxy answered (`nginx -t`'s output, the admin server's or Caddy's
        /// answer).
        output: String,
    },
    /// nginx could not be checked or reloaded (after a new certificate); the previous files
    /// were restored.
    #[error("nginx reload failed: {output}")]
    Reload {
        /// What nginx printed, or why it could not run.
        output: String,
    },
    /// The proxy did not answer (not running, or running without kws's configuration); nothing
    /// was changed.
    #[error("the proxy is unavailable: {output}")]
    Unavailable {
        /// Why: the connection error or the unexpected answer.
        output: String,
    },
    /// A TLS route cannot be served yet: nginx runs without the wildcard certificate (its
    /// files were missing at the last `open` or `reload`).
    #[error("no certificate is loaded ({chain} was missing): cannot serve the TLS route {host}")]
    CertificateMissing {
        /// The TLS route's host.
        host: Hostname,
        /// The certificate chain file.
        chain: PathBuf,
    },
    /// A file or folder of the proxy could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "write".
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A configured path that cannot be written into an nginx configuration.
    #[error("path {path:?} cannot be used in an nginx configuration: it {why}")]
    UnsafePath {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A configuration value the backend cannot work with.
    #[error("invalid proxy configuration: {field} {why}")]
    InvalidConfig {
        /// The field, e.g. `admin_listen`.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// Another writer (another `NginxProxy` or `CaddyProxy`, in this process or another) holds
    /// kws's folder.
    #[error("another writer holds {path}: one writer per folder")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A route file (nginx: the journal) that kws did not write, or that was changed by hand.
    #[error("route file {path} is not a kws route file: {why}")]
    CorruptRouteFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

#[cfg(any(feature = "nginx", feature = "caddy"))]
impl ProxyError {
    /// An `Io` error for `action` on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { action, path, source }
    }
}
