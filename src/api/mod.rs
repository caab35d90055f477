//! The REST API under `/api/v1`, shaped after Fly's Machines API: tenants own instances,
//! apps, devices and databases (`/api/v1/tenants/{tenant}/instances/{name}`); actions are
//! POST sub-resources (`…/start`); creates take an `Idempotency-Key`; lists are paginated
//! (`?limit=&after=`); every error is the JSON of [`crate::http::ErrorBody`].
//!
//! Routes are nested under the tenant because a user may be a member of several: the path
//! says which tenant a request acts in, and a tenant the caller is not a member of is 404.
//! Every handler acts through the Platform with the caller's [`Scope`](crate::platform::Scope)
//! in that tenant, so the Platform, not the handler, enforces roles.

mod extract;
mod instances;
mod jobs;
mod objects;
mod resources;
mod session;
mod sse;
mod streams;
mod tenants;
mod tokens;
mod views;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{StatusCode, Uri},
    middleware,
    routing::{get, post, put},
};

use crate::http::{ApiError, AppState, ErrorCode, assign_request_id, guard_cross_origin};

/// The API's router over `state`, with its middleware: request ids, the cross-origin guard
/// and the body limit.
pub fn router(state: AppState) -> Router {
    let max_body = state.settings().max_body;
    let t = "/api/v1/tenants/{tenant}";
    let api = Router::new()
        .route("/api/v1/sessions", post(session::login))
        .route("/api/v1/sessions/current", axum::routing::delete(session::logout))
        .route("/api/v1/me", get(session::me))
        .route("/api/v1/users", post(tenants::create_user))
        .route("/api/v1/users/me/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/users/me/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/api/v1/tenants", get(tenants::list).post(tenants::create))
        .route(t, get(tenants::get).delete(tenants::delete))
        .route(&format!("{t}/members"), get(tenants::members))
        .route(
            &format!("{t}/members/{{user}}"),
            put(tenants::put_member).delete(tenants::remove_member),
        )
        .route(&format!("{t}/instances"), get(instances::list).post(instances::create))
        .route(&format!("{t}/instances/{{name}}"), get(instances::get).delete(instances::remove))
        .route(&format!("{t}/instances/{{name}}/{{action}}"), post(instances::act))
        .route(&format!("{t}/instances/{{name}}/wait"), get(instances::wait))
        .route(&format!("{t}/instances/{{name}}/logs"), get(streams::instance_logs))
        .route(&format!("{t}/events"), get(streams::tenant_events))
        .route(&format!("{t}/jobs"), get(jobs::list).post(jobs::submit))
        .route(&format!("{t}/jobs/{{id}}"), get(jobs::get))
        .route(&format!("{t}/jobs/{{id}}/events"), get(jobs::events))
        .route(&format!("{t}/devices"), get(resources::list_devices).post(resources::add_device))
        .route(
            &format!("{t}/devices/{{name}}"),
            get(resources::get_device).delete(resources::revoke_device),
        )
        .route(&format!("{t}/apps"), get(resources::list_apps).post(resources::publish_app))
        .route(
            &format!("{t}/apps/{{name}}"),
            get(resources::get_app).delete(resources::unpublish_app),
        )
        .route(
            &format!("{t}/databases"),
            get(resources::list_databases).post(resources::create_database),
        )
        .route(
            &format!("{t}/databases/{{name}}"),
            get(resources::get_database).delete(resources::drop_database),
        )
        .route(
            &format!("{t}/databases/{{name}}/rotate-password"),
            post(resources::rotate_database_password),
        )
        .route(&format!("{t}/operations/{{id}}"), get(resources::get_operation))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    api.layer(middleware::from_fn_with_state(state.clone(), guard_cross_origin))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(assign_request_id))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("route {}", uri.path()))
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this route takes another method",
    )
}
