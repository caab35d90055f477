//! A bare axum hello-world, the baseline of `scripts/api-bench`: `GET /` answers `hello`, on
//! the same tokio multi-thread runtime and the same axum features as `kwsd`, nothing else (no
//! middleware, no state, no logs). `GET /bytes/{n}` answers `n` bytes (at most 1 MiB) made
//! once at start: what a body of that size costs to send and receive, with no work behind it.
//!
//! ```text
//! cargo build --release --features server --example api_hello
//! target/release/examples/api_hello --listen 127.0.0.1:0
//! ```
//!
//! It prints `api_hello: serving http://ADDR/` once it listens (with port 0, the port the
//! kernel chose), and serves until killed.
//!
//! kws:example-needs-args (a server and a load runner: scripts/api-bench runs them)

use std::net::SocketAddr;

use axum::{
    Router,
    body::Bytes,
    extract::Path,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use clap::Parser;

/// A bare axum hello-world.
#[derive(Debug, Parser)]
struct Args {
    /// The address to listen on (port 0: any free port, printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // The same runtime as kwsd (`kws::daemon::main`): multi-thread, one worker per core.
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("api_hello: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args.listen)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("api_hello: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(listen: SocketAddr) -> std::io::Result<()> {
    /// The most `/bytes/{n}` answers.
    const MAX: usize = 1 << 20;
    let body = Bytes::from(vec![b'x'; MAX]);
    let bytes = move |Path(n): Path<usize>| {
        let body = body.clone();
        async move {
            match n <= MAX {
                true => {
                    ([(header::CONTENT_TYPE, "application/json")], body.slice(..n)).into_response()
                }
                false => (StatusCode::BAD_REQUEST, "at most 1 MiB").into_response(),
            }
        }
    };
    let router =
        Router::new().route("/", get(|| async { "hello" })).route("/bytes/{n}", get(bytes));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("api_hello: serving http://{}/", listener.local_addr()?);
    axum::serve(listener, router).await
}
