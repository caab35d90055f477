//! VPN devices, apps, databases and operations.

use std::sync::Arc;

use axum::{
    Extension, Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use kws_accounts::TokenScope;
use serde::Deserialize;
use serde_json::json;

use super::{
    extract::{Body, IdempotencyKey, Path, Query},
    listing::ViewCache,
    objects::{self, PageQuery},
    views::{Listed, ObjectView},
};
use crate::{
    http::{ApiError, AppState, Caller},
    platform::{AddDevice, DatabaseCreated, PublishApp, store::Kind},
};

macro_rules! reads {
    ($list:ident, $get:ident, $kind:expr, $path:literal, $item:literal, $tag:literal) => {
        #[utoipa::path(get, path = $path, tag = $tag, params(("tenant" = String, Path, description = "The tenant's id"), super::objects::PageQuery), responses((status = 200, description = "A page", body = Listed<ObjectView>), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
        /// A page of the tenant's objects of this kind.
        pub(crate) async fn $list(
            State(state): State<AppState>,
            caller: Caller,
            Path(tenant): Path<String>,
            Query(query): Query<PageQuery>,
            Extension(views): Extension<Arc<ViewCache>>,
        ) -> Result<Response, ApiError> {
            objects::list(&state, &views, &caller, &tenant, $kind, query).await
        }

        #[utoipa::path(get, path = $item, tag = $tag, params(("tenant" = String, Path, description = "The tenant's id"), ("name" = String, Path, description = "The object's name")), responses((status = 200, description = "The object", body = ObjectView), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
        /// One object of this kind, with its version as `ETag`.
        pub(crate) async fn $get(
            State(state): State<AppState>,
            caller: Caller,
            Path((tenant, name)): Path<(String, String)>,
        ) -> Result<Response, ApiError> {
            objects::get(&state, &caller, &tenant, $kind, &name).await
        }
    };
}

reads!(
    list_devices,
    get_device,
    Kind::Device,
    "/api/v1/tenants/{tenant}/devices",
    "/api/v1/tenants/{tenant}/devices/{name}",
    "devices"
);
reads!(
    list_apps,
    get_app,
    Kind::App,
    "/api/v1/tenants/{tenant}/apps",
    "/api/v1/tenants/{tenant}/apps/{name}",
    "apps"
);
reads!(
    list_databases,
    get_database,
    Kind::Database,
    "/api/v1/tenants/{tenant}/databases",
    "/api/v1/tenants/{tenant}/databases/{name}",
    "databases"
);

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/devices", tag = "devices", params(("tenant" = String, Path, description = "The tenant's id"), ("Idempotency-Key" = Option<String>, Header, description = "The same key and body answer the same result")), request_body = crate::platform::AddDevice, responses((status = 201, description = "The device and its config, shown once", body = serde_json::Value), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Adds a VPN device: 201 with the device and its wg-quick `config` (with the private key
/// when kws made the pair: this answer is the only copy).
pub(crate) async fn add_device(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    Body(request): Body<AddDevice>,
) -> Result<Response, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Write)?;
    let added = state.platform().add_device(&scope, &tenant, request, key.as_deref()).await?;
    let body = json!({
        "device": ObjectView::of(&added.device),
        "config": added.config.render(),
        "operation": added.operation,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/devices/{name}", tag = "devices", params(("tenant" = String, Path, description = "The tenant's id"), ("name" = String, Path, description = "The object's name")), responses((status = 204, description = "Done"), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Revokes a device (its peer leaves the interface and the firewall): 204.
pub(crate) async fn revoke_device(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Write)?;
    state.platform().revoke_device(&scope, &tenant, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/apps", tag = "apps", params(("tenant" = String, Path, description = "The tenant's id"), ("Idempotency-Key" = Option<String>, Header, description = "The same key and body answer the same result")), request_body = crate::platform::PublishApp, responses((status = 201, description = "Made", body = super::views::ObjectView), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Publishes a port of an instance at `<name>.<domain>`: 201.
pub(crate) async fn publish_app(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    Body(request): Body<PublishApp>,
) -> Result<Response, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Write)?;
    let app = state.platform().publish_app(&scope, &tenant, request, key.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(ObjectView::of(&app))).into_response())
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/apps/{name}", tag = "apps", params(("tenant" = String, Path, description = "The tenant's id"), ("name" = String, Path, description = "The object's name")), responses((status = 204, description = "Done"), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Unpublishes an app: 204.
pub(crate) async fn unpublish_app(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Write)?;
    state.platform().unpublish_app(&scope, &tenant, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewDatabase {
    name: String,
}

fn database_body(made: &DatabaseCreated) -> serde_json::Value {
    let credentials = made.credentials.as_ref().map(|c| {
        json!({
            "host": c.host, "port": c.port, "database": c.database, "role": c.role,
            "password": c.password.expose(), "url": c.url(),
        })
    });
    json!({
        "database": ObjectView::of(&made.database),
        "credentials": credentials,
        "operation": made.operation,
    })
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/databases", tag = "databases", params(("tenant" = String, Path, description = "The tenant's id"), ("Idempotency-Key" = Option<String>, Header, description = "The same key and body answer the same result")), request_body = NewDatabase, responses((status = 201, description = "The database and its credentials, shown once", body = serde_json::Value), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Creates a database with its own login role: 201 with the only copy of the password.
pub(crate) async fn create_database(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    Body(new): Body<NewDatabase>,
) -> Result<Response, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Write)?;
    let made = state.platform().create_database(&scope, &tenant, &new.name, key.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(database_body(&made))).into_response())
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/databases/{name}/rotate-password", tag = "databases", params(("tenant" = String, Path, description = "The tenant's id"), ("name" = String, Path, description = "The object's name")), responses((status = 200, description = "The new credentials", body = serde_json::Value), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// A new password for the database's role: 200 with it (the old one stops working).
pub(crate) async fn rotate_database_password(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Write)?;
    let made = state.platform().rotate_database_password(&scope, &tenant, &name).await?;
    Ok(Json(database_body(&made)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/databases/{name}", tag = "databases", params(("tenant" = String, Path, description = "The tenant's id"), ("name" = String, Path, description = "The object's name")), responses((status = 204, description = "Done"), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Drops a database and its role: 204.
pub(crate) async fn drop_database(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Write)?;
    state.platform().drop_database(&scope, &tenant, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/operations/{id}", tag = "operations", params(("tenant" = String, Path, description = "The tenant's id"), ("id" = String, Path, description = "The operation's id")), responses((status = 200, description = "The operation and its steps", body = serde_json::Value), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// One operation of the tenant: its state and steps. Another tenant's is 404.
pub(crate) async fn get_operation(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Read)?;
    let id =
        uuid::Uuid::parse_str(&id).map_err(|_| ApiError::invalid("id", "not an operation id"))?;
    let op = state.platform().store().get_operation(&scope, id).await?;
    if op.tenant != tenant {
        return Err(ApiError::not_found(format!("operation {id}")));
    }
    Ok(Json(serde_json::to_value(op).unwrap_or_default()).into_response())
}
