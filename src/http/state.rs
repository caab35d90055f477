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
}

impl AppState {
    /// The state over `platform` and `accounts`.
    pub fn new(platform: Platform, accounts: Accounts, settings: HttpSettings) -> Self {
        let shutdown = CancellationToken::new();
        Self { inner: Arc::new(Inner { platform, accounts, settings, shutdown }) }
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
