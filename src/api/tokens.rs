//! The caller's API tokens: `/api/v1/users/me/tokens`.

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use chrono::{DateTime, Utc};
use kws_accounts::{TokenRecord, TokenScope, TokenScopes};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    extract::{Body, Path},
    views::Listed,
};
use crate::http::{ApiError, AppState, Caller};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    name: String,
    /// `["read"]`, `["read", "write"]`, …
    scopes: Vec<String>,
    /// Seconds until it expires; none: it does not.
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct TokenView {
    id: Uuid,
    name: String,
    scopes: Vec<&'static str>,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<&TokenRecord> for TokenView {
    fn from(t: &TokenRecord) -> Self {
        Self {
            id: t.id,
            name: t.name.clone(),
            scopes: t.scopes.names(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
        }
    }
}

#[derive(Debug, Serialize)]
struct Created {
    #[serde(flatten)]
    view: TokenView,
    /// The token: in this answer only.
    token: String,
}

#[utoipa::path(post, path = "/api/v1/users/me/tokens", tag = "tokens", request_body = NewToken, responses((status = 201, description = "The token, shown once", body = serde_json::Value), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Makes a token for the caller (a session, or a token with `write`); the answer is the only
/// place the token appears.
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(new): Body<NewToken>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(TokenScope::Write)?;
    let scopes = TokenScopes::parse(&new.scopes.join(","))?;
    let ttl = new.expires_in.map(Duration::from_secs);
    let made = state.accounts().create_token(&caller.user, &new.name, scopes, ttl).await?;
    let body = Created { view: TokenView::from(&made.record), token: made.secret.expose().into() };
    Ok((StatusCode::CREATED, Json(body)))
}

#[utoipa::path(get, path = "/api/v1/users/me/tokens", tag = "tokens", responses((status = 200, description = "The caller's tokens, without secrets", body = serde_json::Value), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// The caller's tokens (never their secrets).
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Listed<TokenView>>, ApiError> {
    caller.require(TokenScope::Read)?;
    let tokens = state.accounts().tokens(&caller.user).await?;
    let items = tokens.iter().map(TokenView::from).collect();
    Ok(Json(Listed { items, next: None }))
}

#[utoipa::path(delete, path = "/api/v1/users/me/tokens/{id}", tag = "tokens", params(("id" = String, Path, description = "The token's id")), responses((status = 204, description = "Done"), (status = "4XX", description = "An error", body = crate::http::ErrorBody), (status = "5XX", description = "An error", body = crate::http::ErrorBody)))]
/// Revokes one of the caller's tokens: 204; another user's token is 404.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(TokenScope::Write)?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::invalid("id", "not a token id"))?;
    state.accounts().revoke_token(&caller.user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
