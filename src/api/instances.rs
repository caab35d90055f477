//! Instances: launch, read, remove, the actions (`start`, `stop`, `restart`, `redeploy`) and
//! the long poll `wait`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Extension, extract::State, http::StatusCode, response::Response};
use kws_accounts::TokenScope;
use serde::Deserialize;

use super::{
    extract::{Body, IdempotencyKey, IfMatch, Path, Query, precondition},
    listing::ViewCache,
    objects::{self, PageQuery},
    views::{ObjectView, with_etag},
};
use crate::{
    http::{ApiError, AppState, Caller, ErrorCode},
    platform::{
        LaunchInstance, Redeploy,
        model::{InstanceSpec, RunState},
        store::{Kind, PlatformStoreExt as _},
    },
};

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/instances", tag = "instances", params(("tenant" = String, Path, description = "The tenant's id"), super::objects::PageQuery), responses((status = 200, description = "A page", body = super::views::Listed<super::views::ObjectView>), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// The tenant's instances, a page at a time.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    Query(query): Query<PageQuery>,
    Extension(views): Extension<Arc<ViewCache>>,
) -> Result<Response, ApiError> {
    objects::list(&state, &views, &caller, &tenant, Kind::Instance, query).await
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/instances/{name}", tag = "instances", params(("tenant" = String, Path, description = "The tenant's id"), ("name" = String, Path, description = "The object's name")), responses((status = 200, description = "The object", body = super::views::ObjectView), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// One instance.
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    objects::get(&state, &caller, &tenant, Kind::Instance, &name).await
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/instances", tag = "instances", params(("tenant" = String, Path, description = "The tenant's id"), ("Idempotency-Key" = Option<String>, Header, description = "The same key and body answer the same result")), request_body = crate::platform::LaunchInstance, responses((status = 201, description = "Made", body = super::views::ObjectView), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Launches an instance: 201 once it runs (or the launch was compensated: then the error).
/// The same `Idempotency-Key` and body answer the same instance; another body 422.
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    Body(request): Body<LaunchInstance>,
) -> Result<Response, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Write)?;
    let made = state.platform().launch_instance(&scope, &tenant, request, key.as_deref()).await?;
    Ok(with_etag(StatusCode::CREATED, ObjectView::of(&made)))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/instances/{name}", tag = "instances", params(("tenant" = String, Path, description = "The tenant's id"), ("name" = String, Path, description = "The object's name")), responses((status = 204, description = "Done"), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Removes an instance and its network (its workspace as the platform's policy says): 204.
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Write)?;
    state.platform().remove_instance(&scope, &tenant, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An action without a body: a handler per action, documented, run through [`act`].
macro_rules! action {
    ($fn:ident, $action:literal, $path:literal, $doc:literal) => {
        #[utoipa::path(post, path = $path, tag = "instances", params(("tenant" = String, Path, description = "The tenant's id"), ("name" = String, Path, description = "The object's name"), ("If-Match" = Option<String>, Header, description = "The version (ETag) the change is made against; another is 412")), responses((status = 200, description = "The instance", body = super::views::ObjectView), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
        #[doc = $doc]
        pub(crate) async fn $fn(
            State(state): State<AppState>,
            caller: Caller,
            Path((tenant, name)): Path<(String, String)>,
            IfMatch(version): IfMatch,
        ) -> Result<Response, ApiError> {
            let change = Redeploy { expected_version: version, ..Redeploy::default() };
            act(&state, &caller, &tenant, &name, $action, change).await
        }
    };
}

action!(
    start,
    "start",
    "/api/v1/tenants/{tenant}/instances/{name}/start",
    "Starts a stopped instance: 200 with it."
);
action!(
    stop,
    "stop",
    "/api/v1/tenants/{tenant}/instances/{name}/stop",
    "Stops a running instance (its workspace stays): 200 with it."
);
action!(
    restart,
    "restart",
    "/api/v1/tenants/{tenant}/instances/{name}/restart",
    "Restarts an instance: 200 with it."
);

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/instances/{name}/redeploy", tag = "instances", params(("tenant" = String, Path, description = "The tenant's id"), ("name" = String, Path, description = "The object's name"), ("If-Match" = Option<String>, Header, description = "The version (ETag) the change is made against; another is 412")), request_body = Option<crate::platform::Redeploy>, responses((status = 200, description = "The instance", body = super::views::ObjectView), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Recreates an instance from its (or a new) image and environment, keeping its identity,
/// workspace and address: 200 with it. The body (`image`, `env`) is optional.
pub(crate) async fn redeploy(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, name)): Path<(String, String)>,
    IfMatch(version): IfMatch,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let mut change: Redeploy = if body.is_empty() {
        Redeploy::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::MalformedBody, e.to_string())
        })?
    };
    if change.expected_version.is_some() {
        return Err(ApiError::invalid("expected_version", "send the version as If-Match"));
    }
    change.expected_version = version;
    act(&state, &caller, &tenant, &name, "redeploy", change).await
}

/// Runs `action` through the Platform; a stale `If-Match` is 412.
async fn act(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    name: &str,
    action: &str,
    change: Redeploy,
) -> Result<Response, ApiError> {
    let (tenant, scope) = caller.in_tenant(tenant, TokenScope::Write)?;
    let version = change.expected_version;
    let done = state
        .platform()
        .act_on_instance(&scope, &tenant, name, action, change)
        .await
        .map_err(|e| precondition(e, version))?;
    Ok(with_etag(StatusCode::OK, ObjectView::of(&done)))
}

/// `?state=running&timeout=30`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct WaitQuery {
    state: RunState,
    /// Seconds, 1 to the server's bound (60 by default); 30 when absent.
    #[serde(default)]
    timeout: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/instances/{name}/wait", tag = "instances", params(("tenant" = String, Path, description = "The tenant's id"), ("name" = String, Path, description = "The object's name"), WaitQuery), responses((status = 200, description = "The object", body = super::views::ObjectView), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Long-polls until the instance is observed in `state`: 200 with it, 408 `timeout` when the
/// timeout comes first, 503 `busy` when the server shuts down meanwhile.
pub(crate) async fn wait(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, name)): Path<(String, String)>,
    Query(query): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Read)?;
    let bound = state.settings().max_wait;
    let timeout = Duration::from_secs(query.timeout.unwrap_or(30));
    if timeout.is_zero() || timeout > bound {
        return Err(ApiError::invalid("timeout", format!("timeout is 1 to {} s", bound.as_secs())));
    }
    let platform = state.platform();
    let mut events = platform.events().subscribe(scope.clone(), None);
    let deadline = Instant::now() + timeout;
    loop {
        let instance = platform.store().get::<InstanceSpec>(&scope, &tenant, &name).await?;
        if instance.status.value.as_ref().is_some_and(|s| s.state == query.state) {
            return Ok(with_etag(StatusCode::OK, ObjectView::of(&instance)));
        }
        // Any event of the tenant (or a poll every second) makes it look again.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let message = format!("instance {name} was not {:?} within {timeout:?}", query.state);
            return Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, ErrorCode::Timeout, message));
        }
        tokio::select! {
            _ = events.next_event() => {}
            () = tokio::time::sleep(left.min(Duration::from_secs(1))) => {}
            () = state.shutdown().cancelled() => {
                let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Busy, "the server is shutting down");
                e.retry_after = Some(Duration::from_secs(1));
                return Err(e);
            }
        }
    }
}
