//! The dashboard's session cookie, and the IDE hosts' cookie of the same shape.

use axum::http::{HeaderMap, HeaderValue, header};
use kws_accounts::Secret;

/// The session cookie's name and attributes: `__Host-kws_session` with `Secure` behind TLS
/// (host-only, path `/`, so no sibling like a tenant app at `<app>.<domain>` can set or read
/// it), `kws_session` on plain HTTP (browsers refuse `__Host-` without `Secure`). Always
/// `HttpOnly` and `SameSite=Lax`.
///
/// The IDE hosts' cookie ([`SessionCookie::ide`]) is `__Host-kws_ide` (or `kws_ide`): host-only
/// too, so the cookie of one instance's IDE never reaches another's.
#[derive(Debug, Clone, Copy)]
pub struct SessionCookie {
    secure: bool,
    ide: bool,
}

impl SessionCookie {
    /// The dashboard's cookie for a server that is (`secure`) or is not behind TLS.
    pub fn new(secure: bool) -> Self {
        Self { secure, ide: false }
    }

    /// The IDE hosts' cookie, for hosts served (`secure`) or not over HTTPS.
    pub fn ide(secure: bool) -> Self {
        Self { secure, ide: true }
    }

    /// The cookie's name.
    pub fn name(self) -> &'static str {
        match (self.ide, self.secure) {
            (false, true) => "__Host-kws_session",
            (false, false) => "kws_session",
            (true, true) => "__Host-kws_ide",
            (true, false) => "kws_ide",
        }
    }

    /// The `Set-Cookie` value that sets `value` for `max_age_secs`.
    pub fn set(self, value: &Secret, max_age_secs: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}",
            self.name(),
            value.expose()
        );
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The `Set-Cookie` value that removes the cookie.
    pub fn clear(self) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!("{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}", self.name());
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The cookie's value in a request's `Cookie` headers.
    pub fn read(self, headers: &HeaderMap) -> Option<Secret> {
        let name = self.name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| Secret::new(v))
    }
}
