//! `kwsd`, the daemon: its command line, startup (the Platform from a config or the embedded
//! defaults, the accounts beside its store, a first operator when there is none), serving
//! until a signal, and the admin commands.

mod admin;
mod args;
mod serve;

use std::{process::ExitCode, sync::Arc};

use clap::Parser as _;
use kws_accounts::{AccountSettings, Accounts, MemoryAccountStore};

pub use args::{Admin, Args, Command};
pub use serve::{Daemon, FirstAdmin, start};

use crate::platform::{Platform, config::PlatformConfig};

/// The entry point of `kwsd`: 0 on success (a clean shutdown included), 1 on an error,
/// which is printed.
pub fn main() -> ExitCode {
    let args = Args::parse();
    init_logs();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kwsd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kwsd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Structured logs on stderr, filtered by `RUST_LOG` (`info` by default), coloured only when
/// stderr is a terminal (a journal or a file gets no escape codes).
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(args: Args) -> Result<(), String> {
    let config = load(args.config.as_deref())?;
    match args.command {
        Command::Serve { listen, secure_cookies, public_url } => {
            serve::run(config, listen, secure_cookies, public_url).await
        }
        Command::Migrate => {
            let (platform, accounts) = connect(&config).await?;
            drop((platform, accounts));
            println!("migrations applied");
            Ok(())
        }
        Command::CheckConfig => {
            println!("{config:#?}");
            Ok(())
        }
        Command::Admin(admin) => {
            let (platform, accounts) = connect(&config).await?;
            admin::run(&platform, &accounts, admin).await
        }
    }
}

/// The config at `path`, or the embedded defaults.
fn load(path: Option<&std::path::Path>) -> Result<PlatformConfig, String> {
    match path {
        Some(path) => PlatformConfig::load(path).map_err(|e| e.to_string()),
        None => Ok(PlatformConfig::embedded(false)),
    }
}

/// The Platform of `config` (migrations applied) and the accounts beside its store: in
/// PostgreSQL when the store is, else in memory.
pub async fn connect(config: &PlatformConfig) -> Result<(Platform, Accounts), String> {
    let platform = config.build().await.map_err(|e| e.to_string())?;
    let accounts = Accounts::new(account_store(config).await?, AccountSettings::default());
    Ok((platform, accounts))
}

async fn account_store(
    config: &PlatformConfig,
) -> Result<Arc<dyn kws_accounts::AccountStore>, String> {
    match &config.store {
        crate::platform::config::StoreConfig::Memory => Ok(Arc::new(MemoryAccountStore::default())),
        #[cfg(feature = "postgres")]
        crate::platform::config::StoreConfig::Postgres(url) => {
            let pool = crate::platform::config::pg_pool("store", url, 8)
                .await
                .map_err(|e| e.to_string())?;
            let store =
                kws_accounts::PostgresAccountStore::new(pool).await.map_err(|e| e.to_string())?;
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "postgres"))]
        crate::platform::config::StoreConfig::Postgres(_) => {
            Err("[store] backend \"postgres\" needs kwsd built with the postgres feature".into())
        }
    }
}
