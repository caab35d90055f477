//! Signing in and out.

use askama::Template;
use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use kws_accounts::Secret;
use serde::Deserialize;

use super::{
    super::{
        error::WebError,
        forms::Form,
        view::{Frame, html},
    },
    see,
};
use crate::http::{ApiError, AppState, ClientAddr, ErrorCode, SessionCookie};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    frame: Frame,
    next: String,
    user: String,
    error: Option<String>,
}

/// `?next=`: where to go once signed in.
#[derive(Debug, Deserialize)]
pub(crate) struct Next {
    #[serde(default)]
    next: Option<String>,
}

/// A local path to go to after signing in: only `/…` of this server (never `//host` or a
/// scheme), else `/`.
fn local(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".into(),
    }
}

/// `GET /login`.
pub(crate) async fn form(Query(next): Query<Next>) -> Result<Response, WebError> {
    let page = LoginPage {
        frame: Frame::bare("Sign in"),
        next: local(next.next.as_deref()),
        user: String::new(),
        error: None,
    };
    html(&page)
}

#[derive(Debug, Deserialize)]
pub(crate) struct Login {
    user: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login`: a fresh session cookie and a redirect to `next`; a wrong user or password
/// is the form again with 401 (and 429 once the account or address failed too often).
pub(crate) async fn submit(
    State(state): State<AppState>,
    ClientAddr(from): ClientAddr,
    headers: HeaderMap,
    Form(login): Form<Login>,
) -> Result<Response, WebError> {
    // Login CSRF: another site must not sign a visitor in to an account of its choosing.
    if let Some(why) = crate::http::cross_origin_reason(&headers) {
        return Err(WebError(ApiError::new(StatusCode::FORBIDDEN, ErrorCode::CrossOrigin, why)));
    }
    let accounts = state.accounts();
    let next = local(login.next.as_deref());
    match accounts.login(&login.user, &Secret::new(login.password), from).await {
        Ok(begun) => {
            let cookie = SessionCookie::new(state.settings().secure_cookies);
            let ttl = accounts.settings().session_ttl.as_secs();
            let mut response = see(&next);
            response.headers_mut().insert(header::SET_COOKIE, cookie.set(&begun.secret, ttl));
            Ok(response)
        }
        Err(e) => {
            let e = ApiError::from(e);
            if e.status != StatusCode::UNAUTHORIZED && e.status != StatusCode::TOO_MANY_REQUESTS {
                return Err(WebError(e));
            }
            let page = LoginPage {
                frame: Frame::bare("Sign in"),
                next,
                user: login.user,
                error: Some(if e.status == StatusCode::TOO_MANY_REQUESTS {
                    "Too many failed sign-ins: wait a minute and try again.".into()
                } else {
                    "The user or the password is wrong.".into()
                }),
            };
            let mut response = html(&page)?;
            *response.status_mut() = e.status;
            Ok(response)
        }
    }
}

/// `POST /logout`: ends the session and clears the cookie, then to the sign-in page.
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let cookie = SessionCookie::new(state.settings().secure_cookies);
    if let Some(secret) = cookie.read(&headers) {
        crate::gate::end_session(&state, &secret).await?;
    }
    let mut response = see("/login");
    response.headers_mut().insert(header::SET_COOKIE, cookie.clear());
    Ok(response.into_response())
}
