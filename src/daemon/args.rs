//! The command line of `kwsd`.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Parser, Subcommand};

/// kwsd: the kws daemon (API, dashboard, background work).
#[derive(Debug, Parser)]
#[command(name = "kwsd", version, about)]
pub struct Args {
    /// The config file; without one, the embedded defaults (everything in memory).
    #[arg(long, global = true, env = "KWS_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serves the API until SIGTERM or Ctrl-C, then drains.
    Serve {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", env = "KWS_LISTEN")]
        listen: SocketAddr,
        /// The dashboard is served over TLS (by a front end): the session cookie is
        /// `__Host-kws_session` with `Secure`.
        #[arg(long, env = "KWS_SECURE_COOKIES")]
        secure_cookies: bool,
        /// The dashboard's URL as browsers reach it (`https://dashboard.example.org`), where an
        /// IDE host sends a visitor to sign in; default: `http://<the address listened on>`.
        #[arg(long, env = "KWS_PUBLIC_URL")]
        public_url: Option<String>,
    },
    /// Applies the store's migrations and exits.
    Migrate,
    /// Reads and checks the config; prints what it configures (secrets redacted).
    CheckConfig,
    /// Administration of users and tokens, on the config's store.
    #[command(subcommand)]
    Admin(Admin),
}

/// `kwsd admin …`.
#[derive(Debug, Subcommand)]
pub enum Admin {
    /// Makes a user and prints a one-time password.
    CreateUser {
        /// The login name.
        name: String,
        /// A name for people.
        #[arg(long)]
        display_name: Option<String>,
        /// A platform operator (sees every tenant).
        #[arg(long)]
        operator: bool,
    },
    /// Sets a new one-time password for a user (ending its sessions) and prints it.
    ResetPassword {
        /// The login name.
        name: String,
    },
    /// Makes an API token for a user and prints it (once).
    CreateToken {
        /// The login name.
        user: String,
        /// The token's name.
        #[arg(long, default_value = "admin")]
        name: String,
        /// Scopes, comma-separated: read, write, exec.
        #[arg(long, default_value = "read,write,exec")]
        scopes: String,
        /// Seconds until it expires (never, when absent).
        #[arg(long)]
        expires_in: Option<u64>,
    },
}
