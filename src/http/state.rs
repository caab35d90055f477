//! What every handler shares.

use std::{sync::Arc, time::Duration};

use kws_accounts::Accounts;
use tokio_util::sync::CancellationToken;

use crate::platform::Platform;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The largest request body, in bytes; a larger one is 413.
    pub max_body: usize,
    /// How long shutdown waits for requests in flight (streams end at once).
    pub drain: Duration,
    /// Whether cookies carry `Secure` and the `__Host-` prefix (the daemon is behind TLS).
    pub secure_cookies: bool,
    /// The longest `timeout` a long poll (`/wait`) may ask for.
    pub max_wait: Duration,
    /// The dashboard's origin as browsers reach it (`https://dashboard.example.org`, no
    /// trailing `/`): where an IDE host sends a visitor to sign in.
    pub public_url: String,
}

impl Default for HttpSettings {
    /// 1 MiB bodies, a 10 s drain, cookies without `Secure` (plain HTTP on loopback), long
    /// polls of at most 60 s.
    fn default() -> Self {
        Self {
            max_body: 1 << 20,
            drain: Duration::from_secs(10),
            secure_cookies: false,
            max_wait: Duration::from_secs(60),
            public_url: "http://127.0.0.1:8080".into(),
        }
    }
}

/// The dashboard's public origin: `given` (an `http://` or `https://` URL of a host, without
/// a path, query or user; a trailing `/` is dropped), else `http://<listening>`.
pub fn public_url(given: Option<&str>, listening: std::net::SocketAddr) -> Result<String, String> {
    let Some(given) = given else { return Ok(format!("http://{listening}")) };
    let url = given.strip_suffix('/').unwrap_or(given);
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let fine = rest.is_some_and(|r| {
        !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    });
    if fine {
        Ok(url.to_owned())
    } else {
        Err(format!("--public-url {given:?}: give http(s)://host[:port], without a path"))
    }
}

#[cfg(test)]
mod tests {
    use super::public_url;

    #[test]
    fn the_public_url_is_an_origin() {
        let addr = "127.0.0.1:8080".parse().expect("addr");
        assert_eq!(public_url(None, addr).expect("url"), "http://127.0.0.1:8080");
        let given = public_url(Some("https://dash.kws.test:8443/"), addr).expect("url");
        assert_eq!(given, "https://dash.kws.test:8443");
        for bad in
            ["dash.kws.test", "ftp://x", "https://", "https://x/path", "https://u@x", "https://x?q"]
        {
            assert!(public_url(Some(bad), addr).is_err(), "{bad}");
        }
    }
}

/// The state of the server: the Platform, the accounts, the settings, and the token that
/// shutdown cancels (streams and long polls end on it). Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    platform: Platform,
    accounts: Accounts,
    settings: HttpSettings,
    shutdown: CancellationToken,
    ide_sockets: crate::gate::IdeSockets,
}

impl AppState {
    /// The state over `platform` and `accounts`.
    pub fn new(platform: Platform, accounts: Accounts, settings: HttpSettings) -> Self {
        let shutdown = CancellationToken::new();
        let ide_sockets = crate::gate::IdeSockets::default();
        Self { inner: Arc::new(Inner { platform, accounts, settings, shutdown, ide_sockets }) }
    }

    /// The IDE WebSockets the gate let through (see `crate::gate`).
    pub fn ide_sockets(&self) -> &crate::gate::IdeSockets {
        &self.inner.ide_sockets
    }

    /// The Platform.
    pub fn platform(&self) -> &Platform {
        &self.inner.platform
    }

    /// The accounts.
    pub fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }

    /// The settings.
    pub fn settings(&self) -> &HttpSettings {
        &self.inner.settings
    }

    /// Cancelled when the server begins to shut down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }
}
