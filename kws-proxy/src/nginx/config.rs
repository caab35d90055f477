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

pub use crate::DEFAULT_ROUTE_TABLE_BYTES;

/// The smallest route table nginx accepts for `lua_shared_dict`.
const MIN_ROUTE_TABLE_BYTES: usize = 32 << 10;

/// How the nginx backend finds and drives nginx.
///
/// kws owns `dir`: `dir/http.conf` (to be included inside the `http {}` block of the main
/// configuration; nginx needs its Lua module, Debian's `libnginx-mod-http-lua`),
/// `dir/kws_routes.lua` (the route table's code), `dir/admin.conf` (the admin server's token,
/// mode 0600), `dir/routes.journal` (the routes kws persisted, which nginx reads when it
/// starts) and `dir/lock` (held by the one `NginxProxy` that writes the folder).
///
/// `http.conf` holds the `http {}` block's `init_by_lua` (nginx allows one: a main configuration
/// with its own must not include it as it is), and nginx's master must be able to read the
/// 0600 `admin.conf` (run it as root, as Debian does, or as the user kws runs as).
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
    /// Where nginx's admin server for kws listens: a loopback address (anything else is
    /// refused), e.g. `127.0.0.1:8099`. kws changes the route table through it.
    pub admin_listen: SocketAddr,
    /// The size of nginx's shared route table in bytes (`lua_shared_dict`); 150 to 170 bytes
    /// per route (`DEFAULT_ROUTE_TABLE_BYTES` holds about 190,000). A change that does not fit is refused (`ProxyError::Rejected`, stage
    /// `RouteTable`); no route is ever evicted.
    pub route_table_bytes: usize,
    /// Whether kws's servers are the `default_server`s of their addresses, so unknown hosts get
    /// 404 over HTTP and a refused TLS handshake over HTTPS (turn off if the main configuration
    /// has its own `default_server` on these addresses; kws's servers then answer
    /// `*.<domain>` only, and an unknown host under the domain gets a 404 after the handshake
    /// when another server's certificate callback runs first).
    pub default_server: bool,
    /// The wildcard certificate.
    pub certificate: CertFiles,
    /// Proxy timeouts.
    pub timeouts: ProxyTimeouts,
    /// Where the IDE gate answers (kwsd): before nginx passes any request or WebSocket upgrade
    /// of an IDE route, it asks the gate's `/_kws/check` (`auth_request`), and an IDE host's
    /// `/_kws/…` is the gate's own. `None` passes IDE routes unchecked, for an embedder whose
    /// IDE signs its users in by itself.
    pub ide_gate: Option<SocketAddr>,
}

impl NginxConfig {
    /// The file the operator includes inside `http {}`.
    pub fn http_conf_path(&self) -> PathBuf {
        self.dir.join("http.conf")
    }

    /// The journal of the routes kws persisted.
    pub fn journal_path(&self) -> PathBuf {
        self.dir.join("routes.journal")
    }

    pub(crate) fn lock_path(&self) -> PathBuf {
        self.dir.join("lock")
    }

    pub(crate) fn lua_path(&self) -> PathBuf {
        self.dir.join("kws_routes.lua")
    }

    pub(crate) fn admin_conf_path(&self) -> PathBuf {
        self.dir.join("admin.conf")
    }

    /// Refuses paths that cannot be written as a plain double-quoted nginx (and Lua) string, an
    /// admin address off loopback, and a route table nginx cannot make.
    pub(crate) fn check(&self) -> Result<(), ProxyError> {
        for path in [&self.dir, &self.certificate.chain, &self.certificate.key] {
            check_path(path)?;
        }
        if !self.admin_listen.ip().is_loopback() {
            return Err(ProxyError::InvalidConfig {
                field: "admin_listen",
                why: format!("{} is not a loopback address", self.admin_listen),
            });
        }
        if self.route_table_bytes < MIN_ROUTE_TABLE_BYTES {
            return Err(ProxyError::InvalidConfig {
                field: "route_table_bytes",
                why: format!(
                    "{} is below the {MIN_ROUTE_TABLE_BYTES} bytes nginx needs",
                    self.route_table_bytes
                ),
            });
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
