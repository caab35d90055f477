//! Serving a router on a listener until a shutdown future resolves, then draining.

use std::{future::Future, net::SocketAddr, time::Duration};

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How a server ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every request in flight finished within the drain bound.
    Clean,
    /// The bound passed with requests still in flight; they were cut.
    Cut,
}

/// Serves `router` on `listener` until `shutdown` resolves. Then `streams` is cancelled (so
/// open streams send their final event and long polls answer), no new connection is
/// accepted, and requests in flight get at most `drain` to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    streams: CancellationToken,
    drain: Duration,
) -> std::io::Result<Drained> {
    let begun = CancellationToken::new();
    let on_shutdown = begun.clone();
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: ending streams, draining requests");
        streams.cancel();
        on_shutdown.cancel();
    });
    let server = server.into_future();
    tokio::pin!(server);
    tokio::select! {
        done = &mut server => return done.map(|()| Drained::Clean),
        () = begun.cancelled() => {}
    }
    match tokio::time::timeout(drain, server).await {
        Ok(done) => done.map(|()| Drained::Clean),
        Err(_) => {
            tracing::warn!(?drain, "requests still in flight after the drain bound: cut");
            Ok(Drained::Cut)
        }
    }
}
