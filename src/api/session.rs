//! Signing in and out of the dashboard, and `GET /me`.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use kws_accounts::Secret;
use serde::{Deserialize, Serialize};

use super::extract::Body;
use crate::http::{ApiError, AppState, Caller, ClientAddr, SessionCookie};

/// `POST /api/v1/sessions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    user: String,
    password: String,
}

/// A session begun.
#[derive(Debug, Serialize)]
struct Session {
    user: String,
    expires_at: chrono::DateTime<chrono::Utc>,
}

#[utoipa::path(post, path = "/api/v1/sessions", tag = "sessions", request_body = Login, responses((status = 201, description = "Signed in; the session cookie is set", body = serde_json::Value), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Signs in: 201 with a fresh session cookie (a login never reuses a session), 401 for any
/// wrong part, 429 with `Retry-After` once the account or the address has failed too often.
pub(crate) async fn login(
    State(state): State<AppState>,
    ClientAddr(from): ClientAddr,
    Body(login): Body<Login>,
) -> Result<Response, ApiError> {
    let accounts = state.accounts();
    let begun = accounts.login(&login.user, &Secret::new(login.password), from).await?;
    let cookie = SessionCookie::new(state.settings().secure_cookies);
    let ttl = accounts.settings().session_ttl.as_secs();
    let body = Session { user: begun.record.user.to_string(), expires_at: begun.record.expires_at };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie.set(&begun.secret, ttl));
    Ok(response)
}

#[utoipa::path(delete, path = "/api/v1/sessions/current", tag = "sessions", responses((status = 204, description = "Done"), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Signs out: ends the session of the cookie sent and clears the cookie; 204 even when the
/// session had ended.
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let cookie = SessionCookie::new(state.settings().secure_cookies);
    if let Some(secret) = cookie.read(&headers) {
        crate::gate::end_session(&state, &secret).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie.clear());
    Ok(response)
}

#[derive(Debug, Serialize)]
pub(crate) struct Me {
    user: String,
    operator: bool,
    via: &'static str,
    scopes: Vec<&'static str>,
    tenants: Vec<Membership>,
}

#[derive(Debug, Serialize)]
struct Membership {
    tenant: String,
    role: &'static str,
}

#[utoipa::path(get, path = "/api/v1/me", tag = "sessions", responses((status = 200, description = "Who the caller is", body = serde_json::Value), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Who the caller is: user, operator or not, how it signed in, its tenants and roles.
pub(crate) async fn me(caller: Caller) -> Json<Me> {
    let tenants = caller
        .scopes
        .iter()
        .filter_map(|s| match s {
            crate::platform::Scope::Tenant { tenant, role } => {
                Some(Membership { tenant: tenant.to_string(), role: role.as_str() })
            }
            crate::platform::Scope::Operator => None,
        })
        .collect();
    let me = Me {
        user: caller.user.to_string(),
        operator: caller.is_operator(),
        via: caller.via.name(),
        scopes: caller.via.scopes().names(),
        tenants,
    };
    Json(me)
}
