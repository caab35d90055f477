//! `NginxConfig`: where kws's files live, how nginx is checked and reloaded, what every route
//! gets (listen addresses, certificate, timeouts).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{CertFiles, ProxyError};

/// The proxy timeouts of every route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyTimeouts {
    /// Connecting to the upstream.
    pub connect: Duration,
    /// Between two writes to the upstream.
    pub send: Duration,
    /// Between two reads from the upstream, for plain HTTP routes.
    pub read: Duration,
    /// Between two reads from the upstream, for WebSocket routes (an idle IDE stays open).
    pub websocket_read: Duration,
}

impl Default for ProxyTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            send: Duration::from_secs(60),
            read: Duration::from_secs(60),
            websocket_read: Duration::from_secs(3600),
        }
    }
}

/// How the nginx backend finds and drives nginx.
///
/// kws owns `dir`: `dir/http.conf` (to be included inside the `http {}` block of the main
/// configuration), `dir/shared.conf`, `dir/routes/<host>.conf` (one file per route) and
/// `dir/check/` (wrappers for checking one file alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxConfig {
    /// The nginx binary.
    pub binary: PathBuf,
    /// The main configuration (`nginx -c`), which includes `dir/http.conf`.
    pub main_config: PathBuf,
    /// nginx's prefix (`nginx -p`).
    pub prefix: PathBuf,
    /// The master's pid file (the main configuration's `pid`): a reload waits until that
    /// master's new workers serve. If it cannot be read, a reload returns once signalled.
    pub pid_file: PathBuf,
    /// How long a reload may take to switch workers. Past it the change is reported as a
    /// `ProxyError::Reload` and its files are restored; an nginx that loaded it late drops it
    /// again at the next reload.
    pub reload_timeout: Duration,
    /// kws's own folder.
    pub dir: PathBuf,
    /// Where routes listen for plain HTTP, e.g. `0.0.0.0:80`.
    pub http_listen: SocketAddr,
    /// Where routes listen for HTTPS, e.g. `0.0.0.0:443`.
    pub https_listen: SocketAddr,
    /// Whether `http.conf` declares default servers that refuse unknown hosts (turn off if the
    /// main configuration has its own `default_server` on these addresses).
    pub default_server: bool,
    /// The wildcard certificate.
    pub certificate: CertFiles,
    /// Proxy timeouts.
    pub timeouts: ProxyTimeouts,
}

impl NginxConfig {
    pub(crate) fn routes_dir(&self) -> PathBuf {
        self.dir.join("routes")
    }

    pub(crate) fn check_dir(&self) -> PathBuf {
        self.dir.join("check")
    }

    pub(crate) fn shared_conf_path(&self) -> PathBuf {
        self.dir.join("shared.conf")
    }

    /// The file the operator includes inside `http {}`.
    pub fn http_conf_path(&self) -> PathBuf {
        self.dir.join("http.conf")
    }

    /// Refuses paths that cannot be written as a plain double-quoted nginx string.
    pub(crate) fn check_paths(&self) -> Result<(), ProxyError> {
        for path in [&self.dir, &self.certificate.chain, &self.certificate.key] {
            check_path(path)?;
        }
        Ok(())
    }
}

fn check_path(path: &Path) -> Result<(), ProxyError> {
    let bad = match path.to_str() {
        None => Some("is not UTF-8".to_string()),
        Some(s) => s
            .chars()
            .find(|c| c.is_control() || matches!(c, '"' | '\\' | '$' | ';' | '{' | '}' | '*'))
            .map(|c| format!("contains {:?}", c)),
    };
    match bad {
        Some(why) => Err(ProxyError::UnsafePath { path: path.to_path_buf(), why }),
        None => Ok(()),
    }
}
