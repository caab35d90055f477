//! A stub of the API's streams for `kws run` and `kws instances logs`: canned Server-Sent
//! Events (the embedded server runs no code and its instances write no logs).
//!
//! `POST …/jobs` answers the job `j-<source>` (400 without an `Idempotency-Key`); its events are canned by that name: `exit3`
//! writes to both streams and exits 3, `timeout` times out, `reconnect` breaks its stream
//! after one event and finishes once resumed with `Last-Event-ID: 1`.

use axum::{
    Json, Router,
    extract::{Path, Query},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

/// Serves the stub on loopback and answers its base URL.
pub(crate) async fn start() -> String {
    let router = Router::new()
        .route("/api/v1/tenants/acme/jobs", post(submit))
        .route("/api/v1/tenants/acme/jobs/{id}/events", get(events))
        .route("/api/v1/tenants/acme/instances/web/logs", get(logs));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

fn sse(text: String) -> Response {
    ([(header::CONTENT_TYPE, "text/event-stream")], text).into_response()
}

/// One event: `event:`, `id:` when given, and `data` as JSON.
fn event(name: &str, id: Option<u32>, data: &Value) -> String {
    let id = id.map(|id| format!("id: {id}\n")).unwrap_or_default();
    format!("event: {name}\n{id}data: {data}\n\n")
}

async fn submit(headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if bearer != Some("Bearer stub-token") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    assert_eq!(body["language"], "python3", "{body}");
    // `kws run` sends a key, so that a submit resent after a broken connection runs once.
    if headers.get("idempotency-key").is_none_or(|k| k.is_empty()) {
        return (StatusCode::BAD_REQUEST, "no Idempotency-Key").into_response();
    }
    let source = body["source"].as_str().unwrap_or_default().trim();
    (StatusCode::ACCEPTED, Json(json!({"kind": "job", "name": format!("j-{source}")})))
        .into_response()
}

async fn events(Path(id): Path<String>, headers: HeaderMap) -> Response {
    let resumed = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let end = event("end", None, &json!({"reason": "done"}));
    let text = match (id.as_str(), resumed) {
        ("j-exit3", None) => [
            event("queued", Some(1), &json!({"position": 0})),
            ": keep-alive\n\n".to_owned(),
            event("started", Some(2), &json!({})),
            event("stdout", Some(3), &json!({"text": "hello "})),
            event("stderr", Some(4), &json!({"text": "oops\n"})),
            event("stdout", Some(5), &json!({"text": "world\n"})),
            event("exited", Some(6), &json!({"code": 3, "wall_ms": 12})),
            end,
        ]
        .concat(),
        ("j-timeout", None) => {
            [event("started", Some(1), &json!({})), event("timed_out", Some(2), &json!({})), end]
                .concat()
        }
        ("j-reconnect", None) => event("stdout", Some(1), &json!({"text": "a"})),
        ("j-reconnect", Some("1")) => [
            event("stdout", Some(2), &json!({"text": "b\n"})),
            event("exited", Some(3), &json!({"code": 0, "wall_ms": 1})),
            end,
        ]
        .concat(),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    sse(text)
}

async fn logs(Query(query): Query<Value>) -> Response {
    assert_eq!(query["follow"], "false", "{query}");
    let line = |n, stream, line| event("log", Some(n), &json!({"stream": stream, "line": line}));
    sse([
        line(1, "stdout", "listening on :3000"),
        line(2, "stderr", "warning: debug build"),
        line(3, "stdout", "GET / 200"),
        event("end", None, &json!({"reason": "done"})),
    ]
    .concat())
}
