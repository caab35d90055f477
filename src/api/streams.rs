//! The API's streams: the tenant's platform events, an instance's logs, and (in `jobs`) a
//! job's events.

use axum::{extract::State, http::HeaderMap, response::Response};
use futures::StreamExt as _;
use kws_accounts::TokenScope;
use kws_runtime::{LogOptions, LogSource};
use serde::Deserialize;
use serde_json::json;

use super::extract::{Path, Query};
use crate::{
    http::{
        ApiError, AppState, Caller,
        sse::{self, event},
    },
    platform::{Role, Scope, StreamGap},
};

/// `?after=N`: resume after event `N` (`Last-Event-ID` wins).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    #[serde(default)]
    after: Option<u64>,
}

impl EventsQuery {
    /// `?after=`.
    pub(crate) fn after(&self) -> Option<u64> {
        self.after
    }
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/events", tag = "events", params(("tenant" = String, Path, description = "The tenant's id"), EventsQuery), responses((status = 200, description = "A stream of Server-Sent Events", content_type = "text/event-stream", body = String), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// `GET /api/v1/tenants/{tenant}/events`: the tenant's platform events, each named by its
/// `type` and numbered by its `seq` (the `id:`); with `Last-Event-ID` (or `?after=`) the
/// kept events after it first. Events lost to the stream (beyond the replay window) are
/// one `gap` event. Only this tenant's events, whoever asks.
pub(crate) async fn tenant_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (tenant, _) = caller.in_tenant(&tenant, TokenScope::Read)?;
    let platform = state.platform();
    platform.store().get_tenant(&Scope::Operator, &tenant).await?;
    // The subscription sees this tenant only, even for an operator.
    let scope = Scope::tenant(tenant, Role::Viewer);
    let after = sse::resume_after(&headers, query.after());
    let events = platform.events().subscribe(scope, after).map(|item| match item {
        // The event's JSON is made once and shared; each stream only frames it.
        Ok(e) => sse::raw_event(e.kind(), Some(e.seq), e.json()),
        Err(StreamGap::Missed { after, resumed_at }) => event(
            "gap",
            Some(resumed_at.saturating_sub(1)),
            &json!({"after": after, "resumed_at": resumed_at}),
        ),
    });
    Ok(sse::stream(&state, events))
}

/// `?follow=true&tail=100`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogsQuery {
    #[serde(default)]
    follow: bool,
    #[serde(default)]
    tail: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/instances/{name}/logs", tag = "instances", params(("tenant" = String, Path, description = "The tenant's id"), ("name" = String, Path, description = "The object's name"), LogsQuery), responses((status = 200, description = "A stream of Server-Sent Events", content_type = "text/event-stream", body = String), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// `GET /api/v1/tenants/{tenant}/instances/{name}/logs`: the instance's output as `log`
/// events (`{"stream":"stdout"|"stderr","line":…}`, numbered from 1), then `end`.
pub(crate) async fn instance_logs(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, name)): Path<(String, String)>,
    Query(query): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Read)?;
    let options = LogOptions { follow: query.follow, tail: query.tail };
    let lines = state.platform().instance_logs(&scope, &tenant, &name, options).await?;
    let mut n = 0u64;
    let events = lines.map(move |line| {
        n += 1;
        match line {
            Ok(line) => {
                let stream = match line.source {
                    LogSource::Stdout => "stdout",
                    LogSource::Stderr => "stderr",
                };
                event("log", Some(n), &json!({"stream": stream, "line": line.text}))
            }
            Err(e) => event("error", Some(n), &json!({"message": e.to_string()})),
        }
    });
    Ok(sse::stream(&state, events))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/instances/{name}/stats", tag = "instances", params(("tenant" = String, Path, description = "The tenant's id"), ("name" = String, Path, description = "The object's name")), responses((status = 200, description = "A sample of the instance's use of resources: cpu_percent (100 per CPU), memory_bytes, memory_limit_bytes, rx_bytes, tx_bytes, pids", body = serde_json::Value), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// `GET /api/v1/tenants/{tenant}/instances/{name}/stats`: what the instance uses now; 503
/// while it has no container.
pub(crate) async fn instance_stats(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<axum::Json<kws_runtime::InstanceStats>, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Read)?;
    Ok(axum::Json(state.platform().instance_stats(&scope, &tenant, &name).await?))
}
