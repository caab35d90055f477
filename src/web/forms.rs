//! The extractors of the dashboard's handlers: the signed-in [`Viewer`] (a caller without a
//! session is sent to sign in, and back here after) and a [`Form`] body whose rejection is
//! the error page.

use axum::{
    extract::{FromRequest, FromRequestParts, Request},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use kws_accounts::TokenScope;
use kws_core::OwnerId;
use serde::de::DeserializeOwned;

use super::error::WebError;
use crate::{
    http::{ApiError, AppState, Caller, ErrorCode},
    platform::Scope,
};

/// The signed-in user of a page: the same [`Caller`] as the API's.
#[derive(Debug, Clone)]
pub(crate) struct Viewer(pub(crate) Caller);

impl Viewer {
    /// The tenant a `{tenant}` path parameter names and the scope to read it with; a tenant
    /// the viewer is not a member of is 404.
    pub(crate) fn reads(&self, raw: &str) -> Result<(OwnerId, Scope), WebError> {
        Ok(self.0.in_tenant(raw, TokenScope::Read)?)
    }

    /// As [`Viewer::reads`], to change it (the Platform checks the role).
    pub(crate) fn writes(&self, raw: &str) -> Result<(OwnerId, Scope), WebError> {
        Ok(self.0.in_tenant(raw, TokenScope::Write)?)
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match Caller::from_request_parts(parts, state).await {
            Ok(caller) => Ok(Viewer(caller)),
            Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                Err(Redirect::to(&login_url(parts)).into_response())
            }
            Err(e) => Err(WebError(e).into_response()),
        }
    }
}

/// `/login?next=<this page>`, for a GET (a POST's page is not where to come back to).
fn login_url(parts: &Parts) -> String {
    if parts.method != axum::http::Method::GET {
        return "/login".into();
    }
    let here = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    format!("/login?next={}", encode(here))
}

/// Percent-encodes everything but unreserved characters and `/`.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A form body (`application/x-www-form-urlencoded`); a malformed one is the 400 page.
#[derive(Debug)]
pub(crate) struct Form<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = WebError;

    async fn from_request(request: Request, state: &S) -> Result<Self, WebError> {
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(v)) => Ok(Form(v)),
            Err(e) => Err(WebError(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::MalformedBody,
                e.body_text(),
            ))),
        }
    }
}

/// A field a form may leave empty: `""` is `None`.
pub(crate) fn optional(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// A number a form may leave empty; anything else is 400 naming `field`.
pub(crate) fn optional_number(field: &'static str, text: &str) -> Result<Option<u64>, WebError> {
    match optional(text) {
        None => Ok(None),
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|_| WebError(ApiError::invalid(field, format!("{field} must be a number")))),
    }
}
