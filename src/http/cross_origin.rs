//! The CSRF guard: a state-changing request that a browser sends with the session cookie
//! must come from the dashboard's own origin.
//!
//! Fetch Metadata first: `Sec-Fetch-Site` must be `same-origin` or `none` (typed or
//! bookmarked). Browsers without it send `Origin` on cross-origin unsafe requests, which must
//! then match the request's own host. `SameSite=Lax` is not enough alone: a tenant's app at
//! `<app>.<domain>` is same-site with the dashboard. A request carrying a bearer token and no
//! session cookie is not a browser's ambient credential, so it passes.

use axum::{
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{ApiError, AppState, ErrorCode, SessionCookie};

/// Middleware: refuses a cross-origin unsafe request that carries the session cookie with 403
/// `cross_origin`.
pub async fn guard_cross_origin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match refused(&state, &request) {
        Some(e) => e.into_response(),
        None => next.run(request).await,
    }
}

/// The 403 `cross_origin` a cross-origin unsafe request carrying the session cookie gets, or
/// `None` when it may go on (what [`guard_cross_origin`] checks; the dashboard renders the
/// same refusal as a page).
pub fn refused(state: &AppState, request: &Request) -> Option<ApiError> {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let cookie = SessionCookie::new(state.settings().secure_cookies);
    if safe || cookie.read(request.headers()).is_none() {
        return None;
    }
    let why = cross_origin_reason(request.headers())?;
    Some(ApiError::new(StatusCode::FORBIDDEN, ErrorCode::CrossOrigin, why))
}

/// Why a request with `headers` is cross-origin, or `None` when it comes from the server's
/// own origin (or from no browser: neither `Sec-Fetch-Site` nor `Origin`).
pub fn cross_origin_reason(headers: &HeaderMap) -> Option<String> {
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.to_str() {
            Ok("same-origin" | "none") => None,
            Ok(other) => Some(format!("a {other} request may not use the session cookie")),
            Err(_) => Some("Sec-Fetch-Site is not text".into()),
        };
    }
    let origin = headers.get(header::ORIGIN)?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => None,
        _ => Some(format!(
            "origin {:?} is not this server's",
            origin.to_str().unwrap_or("(not text)")
        )),
    }
}
