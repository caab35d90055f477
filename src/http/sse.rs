//! Server-Sent Events: every stream of the API goes through [`stream`], which ends it with a
//! final `end` event (`{"reason":"done"}` when its source ended, `{"reason":"shutdown"}` when
//! the server shuts down), sends a keep-alive comment every 15 s, and tells proxies not to
//! buffer (`X-Accel-Buffering: no`).

use std::{convert::Infallible, pin::Pin, time::Duration};

use axum::{
    http::{HeaderMap, HeaderName, HeaderValue, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::{Stream, StreamExt as _};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::AppState;

/// How often an idle stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// An event named `name` whose data is `data` as JSON, numbered `id` when given.
pub(crate) fn event(name: &str, id: Option<u64>, data: &impl Serialize) -> Event {
    let text = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
    raw_event(name, id, &text)
}

/// An event named `name` whose data is `json`, already serialized.
pub(crate) fn raw_event(name: &str, id: Option<u64>, json: &str) -> Event {
    let event = Event::default().event(name).data(json);
    match id {
        Some(id) => event.id(id.to_string()),
        None => event,
    }
}

struct Source {
    events: Pin<Box<dyn Stream<Item = Event> + Send>>,
    shutdown: CancellationToken,
    ended: bool,
}

/// The response streaming `events`, ended as the module says.
pub(crate) fn stream(
    state: &AppState,
    events: impl Stream<Item = Event> + Send + 'static,
) -> Response {
    let source =
        Source { events: Box::pin(events), shutdown: state.shutdown().clone(), ended: false };
    let body = futures::stream::unfold(source, |mut s| async move {
        if s.ended {
            return None;
        }
        let next = tokio::select! {
            biased;
            () = s.shutdown.cancelled() => None,
            next = s.events.next() => Some(next),
        };
        let event = match next {
            Some(Some(event)) => event,
            Some(None) => {
                s.ended = true;
                event("end", None, &serde_json::json!({"reason": "done"}))
            }
            None => {
                s.ended = true;
                event("end", None, &serde_json::json!({"reason": "shutdown"}))
            }
        };
        Some((Ok::<_, Infallible>(event), s))
    });
    let mut headers = HeaderMap::new();
    headers.insert(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let sse = Sse::new(body).keep_alive(KeepAlive::new().interval(KEEP_ALIVE));
    (headers, sse).into_response()
}

/// The number to resume after: `Last-Event-ID` (what a browser's `EventSource` sends on a
/// reconnect), else `?after=`; a value that is not a number is ignored.
pub(crate) fn resume_after(headers: &HeaderMap, after: Option<u64>) -> Option<u64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or(after)
}
