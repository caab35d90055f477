//! Code-execution jobs: submit (`exec` scope), read, and stream a job's events.

use std::sync::Arc;

use axum::{
    Extension, Json,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use futures::StreamExt as _;
use kws_accounts::TokenScope;
use kws_exec::JobEvent;
use serde_json::{Value, json};

use super::{
    extract::{Body, IdempotencyKey, Path, Query},
    listing::ViewCache,
    objects::{self, PageQuery},
    streams::EventsQuery,
    views::ObjectView,
};
use crate::{
    http::{
        ApiError, AppState, Caller,
        sse::{self, event},
    },
    platform::{SubmitJob, store::Kind},
};

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/jobs", tag = "jobs", params(("tenant" = String, Path, description = "The tenant's id"), ("Idempotency-Key" = Option<String>, Header, description = "The same key and body answer the same job; nothing runs again")), request_body = crate::platform::SubmitJob, responses((status = 202, description = "Accepted", body = super::views::ObjectView), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Submits code: 202 with the job (its `name` is its id) at once; its events stream from
/// `…/jobs/{id}/events`. 429 with `Retry-After` when the tenant's rate is spent, 503 `busy`
/// when the language's queue is full, 503 `unavailable` without an execution engine. With an
/// `Idempotency-Key`, the same key and body answer the first submit's job (202, nothing runs
/// again); the key with another body is 422.
pub(crate) async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    Body(request): Body<SubmitJob>,
) -> Result<Response, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Exec)?;
    let by = caller.user.to_string();
    let job =
        state.platform().submit_job(&scope, &tenant, request, Some(&by), key.as_deref()).await?;
    Ok((StatusCode::ACCEPTED, Json(ObjectView::of(&job))).into_response())
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/jobs", tag = "jobs", params(("tenant" = String, Path, description = "The tenant's id"), super::objects::PageQuery), responses((status = 200, description = "A page", body = super::views::Listed<super::views::ObjectView>), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// The tenant's jobs, a page at a time.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    Query(query): Query<PageQuery>,
    Extension(views): Extension<Arc<ViewCache>>,
) -> Result<Response, ApiError> {
    objects::list(&state, &views, &caller, &tenant, Kind::Job, query).await
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/jobs/{id}", tag = "jobs", params(("tenant" = String, Path, description = "The tenant's id"), ("id" = String, Path, description = "The job's id")), responses((status = 200, description = "The object", body = super::views::ObjectView), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// One job.
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    objects::get(&state, &caller, &tenant, Kind::Job, &id).await
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/jobs/{id}/events", tag = "jobs", params(("tenant" = String, Path, description = "The tenant's id"), ("id" = String, Path, description = "The job's id"), super::streams::EventsQuery), responses((status = 200, description = "A stream of Server-Sent Events", content_type = "text/event-stream", body = String), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// `GET …/jobs/{id}/events`: the job's events from its first (numbered from 1; with
/// `Last-Event-ID` those after it), each named as the module's table says, then `end`.
pub(crate) async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Read)?;
    let after = sse::resume_after(&headers, query.after()).unwrap_or(0);
    let stream = state.platform().job_events(&scope, &tenant, &id).await?;
    let events = stream
        .enumerate()
        .map(|(i, e)| (i as u64 + 1, e))
        .filter(move |(n, _)| std::future::ready(*n > after))
        .map(|(n, e)| {
            let (name, data) = job_event(&e);
            event(name, Some(n), &data)
        });
    Ok(sse::stream(&state, events))
}

/// A job event's SSE name and data: `queued` `{position}`, `started`, `stdout`/`stderr`
/// `{text}` (invalid UTF-8 replaced), `exited` `{code, wall_ms}`, `timed_out`,
/// `output_limit_exceeded`, `killed` `{reason}`, `failed` `{reason}`.
fn job_event(e: &JobEvent) -> (&'static str, Value) {
    match e {
        JobEvent::Queued { position } => ("queued", json!({"position": position})),
        JobEvent::Started => ("started", json!({})),
        JobEvent::Stdout(b) => ("stdout", json!({"text": String::from_utf8_lossy(b)})),
        JobEvent::Stderr(b) => ("stderr", json!({"text": String::from_utf8_lossy(b)})),
        JobEvent::Exited { code, wall_ms } => ("exited", json!({"code": code, "wall_ms": wall_ms})),
        JobEvent::TimedOut => ("timed_out", json!({})),
        JobEvent::OutputLimitExceeded => ("output_limit_exceeded", json!({})),
        JobEvent::Killed { reason } => ("killed", json!({"reason": reason})),
        JobEvent::Failed { error } => ("failed", json!({"reason": error})),
        other => ("event", json!({"debug": format!("{other:?}")})),
    }
}
