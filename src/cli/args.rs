//! The command line, as clap derives it: `kws [--tenant T] [--json] <command> …`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `kws`: the command-line client of a kws server.
#[derive(Debug, Parser)]
#[command(name = "kws", version, about = "The command-line client of a kws server")]
pub(crate) struct Cli {
    /// The tenant to act in (default: the one stored by `kws login`).
    #[arg(long, global = true, env = "KWS_TENANT", value_name = "TENANT")]
    pub(crate) tenant: Option<String>,
    /// Print the API's JSON instead of tables and messages.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Sign in and store an API token for the next commands.
    Login(Login),
    /// Revoke the stored token and forget it.
    Logout,
    /// Show who you are signed in as and your tenants.
    Whoami,
    /// Instances: containers with an IDE.
    #[command(subcommand, visible_alias = "instance")]
    Instances(Instances),
    /// VPN devices.
    #[command(subcommand, visible_alias = "device")]
    Devices(Devices),
    /// Apps: a port of an instance published at `https://<name>.<domain>`.
    #[command(subcommand, visible_alias = "app")]
    Apps(Apps),
    /// Managed PostgreSQL databases.
    #[command(subcommand, visible_alias = "databases")]
    Db(Db),
    /// Run a program in a sandbox and stream its output.
    Run(Run),
}

/// `kws login`.
#[derive(Debug, Args)]
pub(crate) struct Login {
    /// The server's URL (`https://kws.example.com`).
    #[arg(long, env = "KWS_SERVER", value_name = "URL")]
    pub(crate) server: String,
    /// The user to sign in as.
    #[arg(long, value_name = "NAME")]
    pub(crate) user: String,
    /// Read the password from the first line of stdin (else from `KWS_PASSWORD`).
    #[arg(long)]
    pub(crate) password_stdin: bool,
}

/// `kws instances …`.
#[derive(Debug, Subcommand)]
pub(crate) enum Instances {
    /// List the tenant's instances.
    #[command(visible_alias = "list")]
    Ls,
    /// Launch an instance (answers once it runs).
    Create(CreateInstance),
    /// Start an instance and wait until it runs.
    Start(Act),
    /// Stop an instance and wait until it exited.
    Stop(Act),
    /// Restart an instance and wait until it runs.
    Restart(Act),
    /// Remove an instance.
    #[command(visible_alias = "remove")]
    Rm(Named),
    /// Print an instance's output.
    Logs(Logs),
}

/// `kws instances create`.
#[derive(Debug, Args)]
pub(crate) struct CreateInstance {
    /// Its name (a DNS label).
    pub(crate) name: String,
    /// The image (default: the platform's IDE image).
    #[arg(long, value_name = "IMAGE")]
    pub(crate) image: Option<String>,
    /// CPU in thousandths of a core.
    #[arg(long, value_name = "N")]
    pub(crate) cpu_millis: Option<u64>,
    /// Memory in MiB.
    #[arg(long, value_name = "N")]
    pub(crate) memory_mb: Option<u64>,
    /// A port its apps listen on (repeatable).
    #[arg(long = "port", value_name = "PORT")]
    pub(crate) ports: Vec<u16>,
}

/// An action on one instance.
#[derive(Debug, Args)]
pub(crate) struct Act {
    /// The instance.
    pub(crate) name: String,
    /// Answer at once instead of waiting for the new state.
    #[arg(long)]
    pub(crate) no_wait: bool,
}

/// A command on one object, by name.
#[derive(Debug, Args)]
pub(crate) struct Named {
    /// Its name.
    pub(crate) name: String,
}

/// `kws instances logs`.
#[derive(Debug, Args)]
pub(crate) struct Logs {
    /// The instance.
    pub(crate) name: String,
    /// Keep printing new output until interrupted.
    #[arg(short, long)]
    pub(crate) follow: bool,
    /// Only the last N lines of the output so far.
    #[arg(long, value_name = "N")]
    pub(crate) tail: Option<u32>,
}

/// `kws devices …`.
#[derive(Debug, Subcommand)]
pub(crate) enum Devices {
    /// Add a device: prints its WireGuard config and the config as a QR code.
    Add(AddDevice),
    /// List the tenant's devices.
    #[command(visible_alias = "list")]
    Ls,
    /// Revoke a device.
    #[command(visible_alias = "remove")]
    Rm(Named),
}

/// `kws devices add`.
#[derive(Debug, Args)]
pub(crate) struct AddDevice {
    /// Its name.
    pub(crate) name: String,
    /// Print the config only, without its QR code.
    #[arg(long)]
    pub(crate) no_qr: bool,
}

/// `kws apps …`.
#[derive(Debug, Subcommand)]
pub(crate) enum Apps {
    /// Publish a port of an instance at `https://<name>.<domain>`.
    Publish(Publish),
    /// List the tenant's apps.
    #[command(visible_alias = "list")]
    Ls,
    /// Unpublish an app.
    #[command(visible_alias = "remove")]
    Rm(Named),
}

/// `kws apps publish`.
#[derive(Debug, Args)]
pub(crate) struct Publish {
    /// The app's name (its host name's first label).
    pub(crate) name: String,
    /// The instance that serves it.
    #[arg(long, value_name = "INSTANCE")]
    pub(crate) instance: String,
    /// The instance's port.
    #[arg(long, value_name = "PORT")]
    pub(crate) port: u16,
}

/// `kws db …`.
#[derive(Debug, Subcommand)]
pub(crate) enum Db {
    /// Create a database; prints its URL with the password (shown this once).
    Create(Named),
    /// List the tenant's databases.
    #[command(visible_alias = "list")]
    Ls,
    /// Give a database's role a new password; prints the new URL.
    RotatePassword(Named),
    /// Drop a database.
    #[command(visible_alias = "remove")]
    Rm(Named),
}

/// `kws run`.
#[derive(Debug, Args)]
pub(crate) struct Run {
    /// The program's file.
    pub(crate) file: PathBuf,
    /// Its language (default: from the extension: .py python3, .sh sh, .js node).
    #[arg(long, value_name = "LANGUAGE")]
    pub(crate) language: Option<String>,
    /// A file whose contents are the program's standard input.
    #[arg(long, value_name = "FILE")]
    pub(crate) stdin_file: Option<PathBuf>,
    /// Its wall-time limit in milliseconds (default: the server's); past it the job is
    /// stopped and `kws` exits 124.
    #[arg(long, value_name = "MS")]
    pub(crate) wall_time_ms: Option<u64>,
}
