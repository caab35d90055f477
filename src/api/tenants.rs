//! Tenants, their members, and users (the operator's).

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use kws_accounts::{Secret, TokenScope};
use kws_core::OwnerId;
use serde::Deserialize;

use super::{
    extract::{Body, IfMatch, Path, precondition},
    views::Listed,
};
use crate::{
    http::{ApiError, AppState, Caller},
    platform::{Role, Scope, store::Quotas},
};

#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", responses((status = 200, description = "The tenants the caller sees", body = serde_json::Value), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// The tenants the caller sees: every one for an operator, its own for a member.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Listed<serde_json::Value>>, ApiError> {
    caller.require(TokenScope::Read)?;
    let store = state.platform().store();
    let mut items = Vec::new();
    if caller.is_operator() {
        for t in store.list_tenants(&Scope::Operator).await? {
            items.push(serde_json::to_value(t).unwrap_or_default());
        }
    } else {
        for scope in &caller.scopes {
            if let Some(tenant) = scope.confined_to() {
                items.push(
                    serde_json::to_value(store.get_tenant(scope, tenant).await?)
                        .unwrap_or_default(),
                );
            }
        }
    }
    Ok(Json(Listed { items, next: None }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTenant {
    id: String,
    display_name: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    quotas: Option<Quotas>,
}

#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = NewTenant, responses((status = 201, description = "Made", body = serde_json::Value), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Makes a tenant (operator only): 201.
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(new): Body<NewTenant>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(TokenScope::Write)?;
    let scope = operator(&caller)?;
    let id =
        OwnerId::parse(&new.id).map_err(|e| ApiError::invalid("id", format!("invalid id: {e}")))?;
    let made = state.platform().create_tenant(&scope, id, &new.display_name, new.quotas).await?;
    Ok((StatusCode::CREATED, Json(made)))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}", tag = "tenants", params(("tenant" = String, Path, description = "The tenant's id")), responses((status = 200, description = "The tenant and what it uses", body = serde_json::Value), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// One tenant, with what it uses.
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Response, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Read)?;
    let store = state.platform().store();
    let found = store.get_tenant(&scope, &tenant).await?;
    let usage = store.usage(&scope, &tenant).await?;
    let etag = format!("\"{}\"", found.version);
    let mut body = serde_json::to_value(found).unwrap_or_default();
    body["usage"] = serde_json::to_value(usage).unwrap_or_default();
    let mut response = Json(body).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&etag) {
        response.headers_mut().insert(axum::http::header::ETAG, v);
    }
    Ok(response)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantChange {
    /// The new limits (each `null` is unlimited).
    #[schema(value_type = Object)]
    quotas: Quotas,
}

#[utoipa::path(patch, path = "/api/v1/tenants/{tenant}", tag = "tenants", params(("tenant" = String, Path, description = "The tenant's id"), ("If-Match" = Option<String>, Header, description = "The version (ETag) the change is made against; another is 412")), request_body = TenantChange, responses((status = 200, description = "The tenant", body = serde_json::Value), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Sets the tenant's quotas (operator only), conditional on `If-Match` when sent: 200 with
/// the tenant and its new version as `ETag`.
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    IfMatch(version): IfMatch,
    Body(change): Body<TenantChange>,
) -> Result<Response, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Write)?;
    let platform = state.platform();
    let expected = match version {
        Some(v) => v,
        None => platform.store().get_tenant(&scope, &tenant).await?.version,
    };
    let updated = platform
        .set_quotas(&scope, &tenant, expected, change.quotas)
        .await
        .map_err(|e| precondition(e, version))?;
    Ok(tenant_answer(StatusCode::OK, updated))
}

fn tenant_answer(status: StatusCode, tenant: crate::platform::store::Tenant) -> Response {
    let etag = format!("\"{}\"", tenant.version);
    let mut response = (status, Json(tenant)).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&etag) {
        response.headers_mut().insert(axum::http::header::ETAG, v);
    }
    response
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}", tag = "tenants", params(("tenant" = String, Path, description = "The tenant's id")), responses((status = 204, description = "Done"), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Deletes a tenant and everything it owns (operator only): 204.
pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Write)?;
    state.platform().delete_tenant(&scope, &tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/members", tag = "tenants", params(("tenant" = String, Path, description = "The tenant's id")), responses((status = 200, description = "The members", body = serde_json::Value), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// The tenant's members.
pub(crate) async fn members(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Json<Listed<serde_json::Value>>, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Read)?;
    let members = state.platform().store().members(&scope, &tenant).await?;
    let items = members.into_iter().map(|m| serde_json::to_value(m).unwrap_or_default()).collect();
    Ok(Json(Listed { items, next: None }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutMember {
    role: String,
}

#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/members/{user}", tag = "tenants", params(("tenant" = String, Path, description = "The tenant's id"), ("user" = String, Path, description = "The user's login name")), request_body = PutMember, responses((status = 200, description = "The membership", body = serde_json::Value), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Gives `user` a role in the tenant (tenant admins): 200 with the membership.
pub(crate) async fn put_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, user)): Path<(String, String)>,
    Body(put): Body<PutMember>,
) -> Result<impl IntoResponse, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Write)?;
    let role = Role::parse(&put.role)?;
    let member = state.platform().set_member(&scope, &tenant, &user, role).await?;
    Ok(Json(member))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/members/{user}", tag = "tenants", params(("tenant" = String, Path, description = "The tenant's id"), ("user" = String, Path, description = "The user's login name")), responses((status = 204, description = "Done"), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Removes `user` from the tenant (tenant admins): 204.
pub(crate) async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (tenant, scope) = caller.in_tenant(&tenant, TokenScope::Write)?;
    state.platform().remove_member(&scope, &tenant, &user).await?;
    // Its IDE WebSockets into the tenant's instances close too (see `crate::gate`).
    if let Ok(user) = kws_core::DnsLabel::parse(&user) {
        state.ide_sockets().cut_member(&user, &tenant).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUser {
    name: String,
    display_name: String,
    #[serde(default)]
    operator: bool,
    /// Optional: a user without one cannot sign in until an operator sets one.
    #[serde(default)]
    password: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser, responses((status = 201, description = "Made", body = serde_json::Value), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Makes a user (operator only): 201. A refused password leaves no user behind.
pub(crate) async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Body(new): Body<NewUser>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(TokenScope::Write)?;
    let scope = operator(&caller)?;
    let platform = state.platform();
    let user = platform.create_user(&scope, &new.name, &new.display_name, new.operator).await?;
    if let Some(password) = new.password {
        if let Err(e) = state.accounts().set_password(&user.name, &Secret::new(password)).await {
            platform.store().delete_user(&scope, &user.name).await?;
            return Err(e.into());
        }
    }
    Ok((StatusCode::CREATED, Json(user)))
}

/// The operator scope, or 403.
fn operator(caller: &Caller) -> Result<Scope, ApiError> {
    if caller.is_operator() {
        Ok(Scope::Operator)
    } else {
        Err(crate::platform::Error::Forbidden { need: Role::Admin }.into())
    }
}
