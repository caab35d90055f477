//! Who is calling: a bearer token or the session cookie, resolved to one [`Caller`] by one
//! extractor, with the Platform scopes of its user.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header, request::Parts},
};
use kws_accounts::{Secret, TokenScope, Via};
use kws_core::{DnsLabel, OwnerId};

use super::{ApiError, AppState, SessionCookie};
use crate::platform::{Role, Scope};

/// An authenticated caller: the user, how it proved it, and its Platform scopes (one per
/// tenant it is a member of, or the operator's).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user.
    pub user: DnsLabel,
    /// How the caller proved who it is.
    pub via: Via,
    /// The user's scopes in the Platform.
    pub scopes: Vec<Scope>,
}

impl Caller {
    /// Whether the user is a platform operator.
    pub fn is_operator(&self) -> bool {
        self.scopes.iter().any(Scope::is_operator)
    }

    /// Checks that the credential allows `need` (a session allows everything); 403 naming
    /// the scope otherwise.
    pub fn require(&self, need: TokenScope) -> Result<(), ApiError> {
        if self.via.scopes().has(need) {
            Ok(())
        } else {
            Err(ApiError::missing_scope(need.as_str()))
        }
    }

    /// The Platform scope to act on `tenant` with, after checking the credential allows
    /// `need`. A tenant the user is not a member of is 404, as if it did not exist. The
    /// Platform then enforces the role.
    pub fn scope_in(&self, tenant: &OwnerId, need: TokenScope) -> Result<Scope, ApiError> {
        self.require(need)?;
        if self.is_operator() {
            return Ok(Scope::Operator);
        }
        self.scopes
            .iter()
            .find(|s| s.confined_to() == Some(tenant))
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("tenant {tenant}")))
    }

    /// The tenant a `{tenant}` path parameter names, and the scope to act on it with (see
    /// [`Caller::scope_in`]): 400 naming `tenant` when it is not a tenant id.
    pub fn in_tenant(&self, raw: &str, need: TokenScope) -> Result<(OwnerId, Scope), ApiError> {
        let tenant = OwnerId::parse(raw)
            .map_err(|e| ApiError::invalid("tenant", format!("invalid tenant: {e}")))?;
        let scope = self.scope_in(&tenant, need)?;
        Ok((tenant, scope))
    }

    /// The user's role in `tenant` (`None` when not a member; operators are admins).
    pub fn role_in(&self, tenant: &OwnerId) -> Option<Role> {
        if self.is_operator() {
            return Some(Role::Admin);
        }
        self.scopes.iter().find_map(|s| match s {
            Scope::Tenant { tenant: t, role } if t == tenant => Some(*role),
            _ => None,
        })
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let accounts = state.accounts();
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map_err(|_| ApiError::unauthenticated("Authorization is not text")))
            .transpose()?;
        let auth = match bearer {
            Some(value) => {
                let Some(token) = value.strip_prefix("Bearer ") else {
                    return Err(ApiError::unauthenticated("Authorization takes a Bearer token"));
                };
                accounts.token(&Secret::new(token.trim())).await?
            }
            None => {
                let cookie = SessionCookie::new(state.settings().secure_cookies);
                let Some(secret) = cookie.read(&parts.headers) else {
                    return Err(ApiError::unauthenticated("sign in, or send a Bearer token"));
                };
                accounts.session(&secret).await?
            }
        };
        let scopes = match state.platform().scopes_of(&auth.user).await {
            Ok(scopes) => scopes,
            Err(e) if e.kind() == crate::platform::ErrorKind::NotFound => {
                return Err(ApiError::unauthenticated("the user no longer exists"));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Caller { user: auth.user, via: auth.via, scopes })
    }
}

/// The address a request came from (the peer of its connection).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // `serve` always records the peer; a router served without it would count every
        // client as one address, so that is refused instead of guessed.
        match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(info) => Ok(ClientAddr(info.0.ip())),
            None => Err(ApiError::internal("the router is served without ConnectInfo")),
        }
    }
}
