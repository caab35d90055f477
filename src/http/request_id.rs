//! A request id per request: taken from a sane `X-Request-Id` of a trusted front end, or
//! made; echoed in the response, carried by the request's tracing span and its errors.

use axum::{extract::Request, http::HeaderValue, middleware::Next, response::Response};
use uuid::Uuid;

/// The id of the request being served (an extension of the request).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

const HEADER: &str = "x-request-id";

tokio::task_local! {
    /// The id of the request this task serves (errors carry it).
    static CURRENT: String;
}

/// The id of the request the calling task serves, if it serves one.
pub(crate) fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Middleware: assigns the id, runs the request in a span that names it, method and path,
/// and sets `X-Request-Id` on the response. An incoming id is kept only when it is 1 to 64
/// characters of `[A-Za-z0-9._-]`.
pub async fn assign_request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
        .map_or_else(|| Uuid::now_v7().simple().to_string(), str::to_owned);
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %request.method(),
        path = %request.uri().path()
    );
    let started = std::time::Instant::now();
    let mut pending = Unanswered { span: span.clone(), started, answered: false };
    let run = tracing::Instrument::instrument(next.run(request), span.clone());
    let mut response = CURRENT.scope(id.clone(), run).await;
    pending.answered = true;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "served"
        );
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, v);
    }
    response
}

/// Logs a request whose client went away before the answer (the server then drops the
/// handler's future where it stood).
struct Unanswered {
    span: tracing::Span,
    started: std::time::Instant,
    answered: bool,
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if !self.answered {
            let ms = self.started.elapsed().as_millis() as u64;
            self.span.in_scope(|| tracing::info!(ms, "cancelled: the client went away"));
        }
    }
}
