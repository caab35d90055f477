//! The gate of the IDE hosts: what `kwsd` answers for `https://<instance>.<domain>/_kws/…`,
//! which the proxy forwards to it, and the check the proxy makes before every request and
//! WebSocket upgrade to an IDE (nginx `auth_request`).
//!
//! The dashboard's session cookie is host-only, so it never reaches an IDE host. The
//! dashboard's "Open IDE" (`GET /ide/{instance}`, in `crate::web`) issues a one-time ticket
//! for that host and sends the browser to `/_kws/enter?ticket=…` there; the gate trades the
//! ticket for the IDE host's own host-only cookie ([`SessionCookie::ide`]) and sends the
//! browser on to `/`. From then on the proxy asks [`check`] about each request:
//! - `204`: the cookie is this host's, its session lasts, and its user is a member of the
//!   instance's tenant;
//! - `401` (no cookie, or one that ended): with `X-Kws-Signin`, the dashboard URL that signs
//!   in and comes back with a new ticket; the proxy redirects there;
//! - `403` (a member of no tenant with that instance, or no such instance): the proxy answers
//!   404, as for anything of another tenant.
//!
//! Each check reads the session and the memberships again, so a logout, a password change or
//! a member's removal refuses the next request at once; a logout or a member's removal
//! through kwsd also closes the WebSockets already open ([`IdeSockets`]).

use axum::{
    Router,
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use kws_accounts::{Error as AccountsError, Secret};
use serde::Deserialize;

use crate::http::{ApiError, AppState, ErrorCode, SessionCookie};

mod sockets;

pub use sockets::IdeSockets;

/// The header of a `401` from [`check`] that names where to sign in.
pub const SIGNIN_HEADER: &str = "x-kws-signin";

/// The gate's routes (every IDE host's `/_kws/enter`, and `/_kws/check` for the proxy).
pub fn routes() -> Router<AppState> {
    Router::new().route("/_kws/enter", get(enter)).route("/_kws/check", get(check))
}

/// The cookie of IDE hosts on this platform (`Secure` when routes are served over HTTPS).
fn cookie(state: &AppState) -> SessionCookie {
    SessionCookie::ide(state.platform().settings().tls)
}

/// The request's host and the instance it is the IDE of: `<name>.<domain>` (a port
/// dropped); `None` for any other host.
fn instance_of(state: &AppState, headers: &HeaderMap) -> Option<(String, String)> {
    let raw = headers.get(header::HOST)?.to_str().ok()?;
    let host = kws_accounts::normalize_host(raw).ok()?;
    let domain = state.platform().settings().domain.to_string();
    let name = host.strip_suffix(&domain)?.strip_suffix('.')?;
    (!name.is_empty() && !name.contains('.')).then(|| (name.to_owned(), host.clone()))
}

/// Where a visitor of the IDE of `name` signs in: the dashboard's `/ide/{name}`, which comes
/// back with a ticket.
fn signin_url(state: &AppState, name: &str) -> String {
    format!("{}/ide/{name}", state.settings().public_url)
}

/// The two ends of the connection of a WebSocket upgrade the proxy asks about: the browser's
/// (`X-Kws-Peer`) and its own (`X-Kws-Local`), each `<address> <port>`; `None` for any other
/// request.
fn websocket_ends(headers: &HeaderMap) -> Option<(std::net::SocketAddr, std::net::SocketAddr)> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !text("x-kws-upgrade")?.eq_ignore_ascii_case("websocket") {
        return None;
    }
    let end = |name: &str| -> Option<std::net::SocketAddr> {
        let (ip, port) = text(name)?.split_once(' ')?;
        Some(std::net::SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
    };
    Some((end("x-kws-peer")?, end("x-kws-local")?))
}

/// Ends the session of the dashboard cookie `secret` (a logout) and closes the IDE
/// WebSockets it opened.
pub async fn end_session(state: &AppState, secret: &Secret) -> Result<(), AccountsError> {
    let accounts = state.accounts();
    let session = match accounts.session(secret).await {
        Ok(who) => match who.via {
            kws_accounts::Via::Session { id } => Some(id),
            kws_accounts::Via::Token { .. } => None,
        },
        Err(_) => None,
    };
    accounts.logout(secret).await?;
    if let Some(id) = session {
        state.ide_sockets().cut_session(id).await;
    }
    Ok(())
}

/// `?ticket=`.
#[derive(Debug, Deserialize)]
struct Enter {
    #[serde(default)]
    ticket: String,
}

/// `GET /_kws/enter?ticket=…`: trades the ticket for this host's cookie and redirects to `/`;
/// a used, expired or foreign ticket is 403 and names where to get a new one.
async fn enter(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<Enter>,
) -> Result<Response, crate::web::WebError> {
    let Some((name, host)) = instance_of(&state, &headers) else {
        return Err(ApiError::not_found("IDE host").into());
    };
    let accounts = state.accounts();
    let grant = match accounts.redeem_ticket(&Secret::new(query.ticket), &host).await {
        Ok(grant) => grant,
        Err(AccountsError::Unauthenticated(why)) => {
            let message = format!(
                "This IDE link cannot be used ({why}). Open the IDE again from the dashboard: {}",
                signin_url(&state, &name)
            );
            return Err(ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message).into());
        }
        Err(e) => return Err(ApiError::from(e).into()),
    };
    let ttl = accounts.settings().session_ttl.as_secs();
    let mut response = crate::web::see("/");
    let headers = response.headers_mut();
    headers.insert(header::SET_COOKIE, cookie(&state).set(&grant.secret, ttl));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The ticket is in this URL: no page it leads to may see it.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    Ok(response)
}

/// `GET /_kws/check`: whether the request the proxy is about to pass may reach the IDE (see
/// the module's documentation for the answers).
async fn check(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some((name, host)) = instance_of(&state, &headers) else {
        return StatusCode::FORBIDDEN.into_response();
    };
    let signin = || {
        let url = signin_url(&state, &name);
        let value = HeaderValue::from_str(&url).unwrap_or(HeaderValue::from_static("/"));
        (StatusCode::UNAUTHORIZED, [(SIGNIN_HEADER, value)]).into_response()
    };
    let Some(secret) = cookie(&state).read(&headers) else { return signin() };
    let grant = match state.accounts().host_session(&secret, &host).await {
        Ok(grant) => grant,
        Err(AccountsError::Unauthenticated(_) | AccountsError::Invalid { .. }) => return signin(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    match state.platform().member_instance(&grant.user, &name).await {
        Ok(Some(instance)) => {
            if let Some((peer, local)) = websocket_ends(&headers) {
                let sockets = state.ide_sockets();
                sockets.opened(&grant.user, grant.session, &instance.meta.tenant, peer, local);
            }
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(None) => StatusCode::FORBIDDEN.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
