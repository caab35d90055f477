//! The dashboard: pages rendered on the server from templates compiled into the binary
//! (`templates/`), enhanced by one small script (`static/app.js`) that adds live updates and
//! in-place actions. Every form works without JavaScript: a POST, then a redirect to a GET
//! (or, for a secret shown once, the page that shows it).
//!
//! Routes: `/login`, `/logout`, `/` (to the caller's first tenant), `/t/{tenant}/…` for a
//! tenant's pages, `/ide/{instance}` (a ticket into that instance's IDE, see `crate::gate`), `/t/{tenant}/live` (the SSE of rendered partials), `/admin` (operators),
//! `/static/{file}` (content-hashed, cached for a year). Every page goes through the same
//! [`Caller`](crate::http::Caller) and Platform scopes as the API: another tenant's object is
//! 404 here too.

mod assets;
mod error;
mod forms;
mod headers;
mod live;
mod pages;
mod view;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{StatusCode, Uri},
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
};

use crate::http::{ApiError, AppState, ErrorCode, assign_request_id};

pub use assets::asset_url;
pub(crate) use error::WebError;
pub(crate) use pages::see;

/// The dashboard's routes, without state or middleware.
fn routes() -> Router<AppState> {
    use pages::{admin, apps, databases, devices, instances, jobs, login, operations, overview};
    Router::new()
        .route("/", get(overview::home))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/static/{file}", get(assets::serve))
        .route("/t/{tenant}", get(overview::page))
        .route("/t/{tenant}/live", get(live::stream))
        .route("/t/{tenant}/instances", get(instances::list).post(instances::create))
        .route("/ide/{name}", get(instances::open_ide))
        .route("/t/{tenant}/instances/{name}", get(instances::detail))
        .route("/t/{tenant}/instances/{name}/{action}", post(instances::act))
        .route("/t/{tenant}/devices", get(devices::list).post(devices::add))
        .route("/t/{tenant}/devices/{name}/revoke", post(devices::revoke))
        .route("/t/{tenant}/apps", get(apps::list).post(apps::publish))
        .route("/t/{tenant}/apps/{name}/unpublish", post(apps::unpublish))
        .route("/t/{tenant}/databases", get(databases::list).post(databases::create))
        .route("/t/{tenant}/databases/{name}/rotate", post(databases::rotate))
        .route("/t/{tenant}/databases/{name}/drop", post(databases::drop))
        .route("/t/{tenant}/run", get(jobs::runner).post(jobs::submit))
        .route("/t/{tenant}/jobs/{id}", get(jobs::detail))
        .route("/t/{tenant}/operations", get(operations::list))
        .route("/admin", get(admin::page))
        .route("/admin/tenants", post(admin::create_tenant))
        .route("/admin/users", post(admin::create_user))
        .route("/admin/users/{user}/tokens/{id}/revoke", post(admin::revoke_token))
        .route("/admin/tenants/{tenant}/quotas", post(admin::set_quotas))
        .route("/admin/tenants/{tenant}/members", post(admin::set_member))
}

/// The daemon's whole application: the dashboard, with the API ([`crate::api::router`]'s
/// routes) under `/api/`. Every response carries the security headers (a
/// Content-Security-Policy without `unsafe-inline`, no framing, no sniffing) and a request
/// id; a path nothing serves is the HTML 404 page, or the API's JSON 404 under `/api/`.
pub fn app(state: AppState) -> Router {
    let max_body = state.settings().max_body;
    let web = routes()
        .layer(middleware::from_fn_with_state(state.clone(), guard_forms))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state.clone());
    web.merge(crate::gate::routes().with_state(state.clone()))
        .merge(crate::api::layered(state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(headers::security_headers))
        .layer(middleware::from_fn(assign_request_id))
}

/// The API's cross-origin guard ([`crate::http::guard_cross_origin`]), its refusal rendered as
/// the error page.
async fn guard_forms(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    match crate::http::refused_cross_origin(&state, &request) {
        Some(e) => error::WebError(e).into_response(),
        None => next.run(request).await,
    }
}

fn is_api(uri: &Uri) -> bool {
    uri.path() == "/api" || uri.path().starts_with("/api/")
}

async fn not_found(uri: Uri) -> Response {
    if is_api(&uri) {
        crate::api::not_found(uri).await.into_response()
    } else {
        error::not_found(uri).await.into_response()
    }
}

async fn method_not_allowed(uri: Uri) -> Response {
    if is_api(&uri) {
        crate::api::method_not_allowed().await.into_response()
    } else {
        let e = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            "this page takes another method",
        );
        error::WebError(e).into_response()
    }
}
