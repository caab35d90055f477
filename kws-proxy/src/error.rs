//! The crate's one error type for routes.

use std::{net::SocketAddr, path::PathBuf};

use ipnet::IpNet;
use kws_core::{Domain, Hostname, ParseError};

/// Which nginx check refused a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckStage {
    /// The route's file alone, inside a wrapper configuration.
    RouteAlone,
    /// The whole configuration, with the new file in place.
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
    /// nginx refused the configuration; nothing was changed.
    #[error("nginx refused the configuration for {host} ({stage:?}): {output}")]
    Rejected {
        /// The host whose change was refused.
        host: Hostname,
        /// The check that failed.
        stage: CheckStage,
        /// What `nginx -t` printed.
        output: String,
    },
    /// nginx could not be reloaded; the previous files were restored.
    #[error("nginx reload failed: {output}")]
    Reload {
        /// What nginx printed, or why it could not run.
        output: String,
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
    /// A route file that kws did not write, or that was changed by hand.
    #[error("route file {path} is not a kws route file: {why}")]
    CorruptRouteFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

#[cfg(feature = "nginx")]
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
