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
mod listing;
mod objects;
mod resources;
mod session;
mod streams;
mod tenants;
mod tokens;
mod views;

use std::sync::Arc;

use axum::{
    Extension, Router,
    extract::DefaultBodyLimit,
    http::{StatusCode, Uri},
    middleware,
    routing::get,
};
use utoipa::OpenApi as _;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::http::{ApiError, AppState, ErrorCode, assign_request_id, guard_cross_origin};

/// The OpenAPI document's frame; the paths come from the handlers' annotations as they are
/// routed (`utoipa_axum::routes!`), so a route cannot be served without being documented.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "kws API", description = "The REST API of kwsd: tenants, instances, apps, VPN devices, databases, jobs, operations, users and tokens."),
    components(schemas(crate::http::ErrorBody, crate::http::ErrorCode)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// Declares the two ways to authenticate: a bearer token, or the session cookie.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        components.add_security_scheme("token", SecurityScheme::Http(bearer));
        let cookie = ApiKey::Cookie(ApiKeyValue::new("__Host-kws_session"));
        components.add_security_scheme("session", SecurityScheme::ApiKey(cookie));
    }
}

/// Every route with its handlers, and the OpenAPI document they make.
fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(session::login))
        .routes(routes!(session::logout))
        .routes(routes!(session::me))
        .routes(routes!(tenants::create_user))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(tenants::list, tenants::create))
        .routes(routes!(tenants::get, tenants::update, tenants::delete))
        .routes(routes!(tenants::members))
        .routes(routes!(tenants::put_member, tenants::remove_member))
        .routes(routes!(instances::list, instances::create))
        .routes(routes!(instances::get, instances::remove))
        .routes(routes!(instances::start))
        .routes(routes!(instances::stop))
        .routes(routes!(instances::restart))
        .routes(routes!(instances::redeploy))
        .routes(routes!(instances::wait))
        .routes(routes!(streams::instance_logs))
        .routes(routes!(streams::instance_stats))
        .routes(routes!(streams::tenant_events))
        .routes(routes!(jobs::list, jobs::submit))
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::events))
        .routes(routes!(resources::list_devices, resources::add_device))
        .routes(routes!(resources::get_device, resources::revoke_device))
        .routes(routes!(resources::list_apps, resources::publish_app))
        .routes(routes!(resources::get_app, resources::unpublish_app))
        .routes(routes!(resources::list_databases, resources::create_database))
        .routes(routes!(resources::get_database, resources::drop_database))
        .routes(routes!(resources::rotate_database_password))
        .routes(routes!(resources::get_operation))
        .split_for_parts()
}

/// The API's OpenAPI 3.1 document, as `GET /api/v1/openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().1
}

/// The API's router over `state`, with its middleware: request ids, the cross-origin guard
/// and the body limit. `GET /api/v1/openapi.json` serves the document, to anyone.
pub fn router(state: AppState) -> Router {
    layered(state)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(assign_request_id))
}

/// The API's routes with the cross-origin guard and the body limit, but no fallback and no
/// request ids: for an application that serves the API beside other routes (the daemon's,
/// [`crate::web::app`]) and assigns request ids once, around everything.
pub(crate) fn layered(state: AppState) -> Router {
    let max_body = state.settings().max_body;
    let (api, doc) = routes();
    let doc = Arc::new(doc);
    let api = api.route(
        "/api/v1/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { axum::Json(doc.as_ref().clone()) }
        }),
    );
    api.layer(middleware::from_fn_with_state(state.clone(), guard_cross_origin))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(Extension(Arc::new(listing::ViewCache::default())))
        .with_state(state)
}

/// The API's answer to a path it does not serve: 404 `not_found`.
pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("route {}", uri.path()))
}

/// The API's answer to a method a path does not take: 405 `method_not_allowed`.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this route takes another method",
    )
}
