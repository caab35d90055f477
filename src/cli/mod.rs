//! `kws`, the command-line client of `kwsd`'s API: it signs in once (`kws login`), keeps an
//! API token in [`config`], and drives instances, VPN devices, apps, databases and code
//! execution over HTTP with [`client::Client`]. It is a plain HTTP client: nothing here
//! needs the `server` feature.
//!
//! Every command exits 0 on success; on failure it prints one line, `kws: <message>`, on
//! stderr (with the API's error code) and exits non-zero. `kws run` exits with the job's
//! own code (124 when it timed out, 137 when it was killed).

mod args;
pub mod client;
mod commands;
pub mod config;
pub mod error;
pub mod output;
pub mod sse;

use std::process::ExitCode;

use clap::Parser as _;

pub use client::CliError;

/// Runs `kws` with the process's arguments and answers its exit code.
pub fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kws: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        // The reader of our output went away (`kws instances ls | head`): not an error.
        Err(CliError::BrokenPipe) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kws: {e}");
            e.exit_code()
        }
    }
}
