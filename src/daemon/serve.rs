//! `kwsd serve`: startup, the first operator, and serving until a signal.

use std::net::SocketAddr;

use kws_accounts::{Accounts, Secret};
use tokio::net::TcpListener;

use super::admin::create_user;
use crate::{
    http::{AppState, Drained, HttpSettings, serve},
    platform::{Platform, Scope, config::PlatformConfig},
};

/// The operator made at the first start, and its one-time password.
#[derive(Debug)]
pub struct FirstAdmin {
    /// Its login name (`admin`).
    pub user: String,
    /// Its password, to print once.
    pub password: Secret,
}

/// A daemon ready to serve: its state, and the first operator if this start made one.
#[derive(Debug)]
pub struct Daemon {
    /// What handlers share.
    pub state: AppState,
    /// The operator made now, when no user existed.
    pub first_admin: Option<FirstAdmin>,
}

/// The name of the operator made at the first start.
const FIRST_ADMIN: &str = "admin";

/// Builds the daemon over `platform` and `accounts`: when the platform has no operator yet,
/// makes `admin` with a one-time password.
pub async fn start(
    platform: Platform,
    accounts: Accounts,
    settings: HttpSettings,
) -> Result<Daemon, String> {
    let first_admin = match platform.store().get_user(&Scope::Operator, &first_admin_name()).await {
        Ok(_) => None,
        Err(e) if e.kind() == crate::platform::ErrorKind::NotFound => {
            let password =
                create_user(&platform, &accounts, FIRST_ADMIN, "Administrator", true).await?;
            Some(FirstAdmin { user: FIRST_ADMIN.into(), password })
        }
        Err(e) => return Err(e.to_string()),
    };
    Ok(Daemon { state: AppState::new(platform, accounts, settings), first_admin })
}

fn first_admin_name() -> kws_core::DnsLabel {
    kws_core::DnsLabel::parse(FIRST_ADMIN).unwrap_or_else(|_| unreachable!("a valid label"))
}

/// `kwsd serve`: connects, starts, prints the first operator's password once, serves on
/// `listen` until SIGTERM or Ctrl-C, drains, and returns.
pub(super) async fn run(
    config: PlatformConfig,
    listen: SocketAddr,
    secure_cookies: bool,
    public_url: Option<String>,
) -> Result<(), String> {
    let listener =
        TcpListener::bind(listen).await.map_err(|e| format!("listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let public_url = crate::http::public_url(public_url.as_deref(), addr)?;
    let (platform, accounts) = super::connect(&config).await?;
    let background = platform.spawn_background();
    let settings = HttpSettings { secure_cookies, public_url, ..HttpSettings::default() };
    let daemon = start(platform, accounts, settings).await?;
    if let Some(first) = &daemon.first_admin {
        println!(
            "kwsd: first start: operator {:?}, one-time password (shown once): {}",
            first.user,
            first.password.expose()
        );
    }
    println!("kwsd: serving the dashboard at http://{addr}/ and the API at http://{addr}/api/v1");
    let state = daemon.state.clone();
    let drain = state.settings().drain;
    let router = crate::web::app(state.clone());
    let drained = serve(listener, router, signal(), state.shutdown().clone(), drain)
        .await
        .map_err(|e| format!("serve: {e}"))?;
    background.stop().await;
    if let Err(e) = state.platform().shutdown().await {
        tracing::warn!(error = %e, "the Platform's engines did not stop cleanly");
    }
    match drained {
        Drained::Clean => tracing::info!("stopped"),
        Drained::Cut => tracing::warn!("stopped; requests were cut at the drain bound"),
    }
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(%e, "cannot listen for SIGTERM; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
