//! `kws login`, `kws logout` and `kws whoami`.

use std::io::BufRead as _;

use reqwest::{Method, header};
use serde_json::json;

use super::Context;
use crate::cli::{
    args::Login,
    client::{CliError, Client, segment},
    config::{self, Credentials, TOKEN_NAME},
    output,
};

/// Signs in with a password, makes an API token with a session, ends the session, and
/// stores the server, the token and a default tenant.
pub(crate) async fn login(args: Login, tenant: Option<String>, json: bool) -> Result<(), CliError> {
    let server = server_url(&args.server)?;
    let password = password(args.password_stdin)?;
    let path = config::credentials_path()?;
    let anonymous = Client::new(&server, None)?;
    let begin = anonymous
        .request(Method::POST, "/api/v1/sessions")
        .json(&json!({"user": args.user, "password": password}));
    let session = anonymous.send(begin).await?;
    let cookie = session_cookie(session.headers())
        .ok_or_else(|| CliError::Transport("the server's login set no session cookie".into()))?;
    let made = anonymous
        .json(
            anonymous
                .request(Method::POST, "/api/v1/users/me/tokens")
                .header(header::COOKIE, &cookie)
                .json(&json!({"name": TOKEN_NAME, "scopes": ["read", "write", "exec"]})),
        )
        .await;
    // The session was only the way to the token: end it whatever happened (it expires anyway).
    let end = anonymous
        .request(Method::DELETE, "/api/v1/sessions/current")
        .header(header::COOKIE, &cookie);
    let _ = anonymous.send(end).await;
    let made = made?;
    let token = made["token"]
        .as_str()
        .ok_or_else(|| CliError::Transport("the server's answer has no token".into()))?;
    let token_id = made["id"].as_str().map(str::to_owned);
    let client = Client::new(&server, Some(token.to_owned()))?;
    let me = match client.get("/api/v1/me").await {
        Ok(me) => me,
        Err(e) => {
            revoke(&client, token_id.as_deref()).await.ok(); // unsaved: of no use to anyone
            return Err(e);
        }
    };
    let first = me["tenants"].as_array().and_then(|t| t.first()).and_then(|m| m["tenant"].as_str());
    let tenant = tenant.filter(|t| !t.is_empty()).or_else(|| first.map(str::to_owned));
    let user = me["user"].as_str().unwrap_or(&args.user).to_owned();
    let old = config::load(&path).ok().flatten();
    let credentials = Credentials {
        server: server.clone(),
        token: token.to_owned(),
        token_id: token_id.clone(),
        user: Some(user.clone()),
        tenant: tenant.clone(),
    };
    if let Err(e) = config::save(&path, &credentials) {
        revoke(&client, token_id.as_deref()).await.ok();
        return Err(e);
    }
    // The token of an earlier login is of no use now: revoke it (best effort).
    if let Some(old) = old.filter(|o| o.token != credentials.token) {
        if let Ok(old_client) = Client::new(&old.server, Some(old.token.clone())) {
            revoke(&old_client, old.token_id.as_deref()).await.ok();
        }
    }
    let tenant_text = tenant.map_or_else(|| "no tenant".to_owned(), |t| format!("tenant {t}"));
    let message = format!("signed in to {server} as {user} ({tenant_text})");
    if json { output::out(&output::json(&me)) } else { output::line(&message) }
}

/// Revokes the stored token and removes the credentials file. A token the server no longer
/// takes (401) counts as revoked.
pub(crate) async fn logout() -> Result<(), CliError> {
    let path = config::credentials_path()?;
    let stored = config::load(&path)?
        .ok_or_else(|| CliError::local(format!("not signed in (no {})", path.display())))?;
    let client = Client::new(&stored.server, Some(stored.token.clone()))?;
    match revoke(&client, stored.token_id.as_deref()).await {
        Ok(()) => {}
        Err(CliError::Api { status: 401, .. }) => {}
        Err(e) => {
            let kept = format!("the credentials are kept in {}", path.display());
            return Err(CliError::local(format!("cannot revoke the token: {e}; {kept}")));
        }
    }
    config::remove(&path)?;
    output::line(&format!("signed out of {}", stored.server))
}

/// Revokes the caller's token `id`, or, not knowing it, the one token named [`TOKEN_NAME`].
async fn revoke(client: &Client, id: Option<&str>) -> Result<(), CliError> {
    let id = match id {
        Some(id) => id.to_owned(),
        None => {
            let tokens = client.list("/api/v1/users/me/tokens").await?;
            let ours: Vec<&str> = tokens
                .iter()
                .filter(|t| t["name"] == TOKEN_NAME && t["revoked_at"].is_null())
                .filter_map(|t| t["id"].as_str())
                .collect();
            match ours.as_slice() {
                [one] => (*one).to_owned(),
                _ => {
                    let n = ours.len();
                    return Err(CliError::local(format!(
                        "{n} tokens are named {TOKEN_NAME} and the file does not say which is this one"
                    )));
                }
            }
        }
    };
    client.delete(&format!("/api/v1/users/me/tokens/{}", segment(&id)?)).await
}

/// Who the caller is and its tenants.
pub(crate) async fn whoami(ctx: &Context) -> Result<(), CliError> {
    let me = ctx.client.get("/api/v1/me").await?;
    if ctx.json {
        return output::out(&output::json(&me));
    }
    let tenants: Vec<String> = me["tenants"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|m| format!("{} ({})", output::cell(m, "/tenant"), output::cell(m, "/role")))
                .collect()
        })
        .unwrap_or_default();
    let operator = if me["operator"] == true { ", operator" } else { "" };
    let user = output::cell(&me, "/user");
    let server = ctx.client.server();
    output::line(&format!("{user} on {server}{operator}"))?;
    output::line(&format!(
        "tenants: {}",
        if tenants.is_empty() { "none".to_owned() } else { tenants.join(", ") }
    ))
}

/// `raw` as a server URL: `http(s)://host[:port]`, without a trailing `/`.
fn server_url(raw: &str) -> Result<String, CliError> {
    let url = raw.trim().trim_end_matches('/');
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(['?', '#']) => Ok(url.to_owned()),
        _ => Err(CliError::local(format!("--server takes http(s)://HOST[:PORT], not {raw:?}"))),
    }
}

/// The password: the first line of stdin with `--password-stdin`, else `KWS_PASSWORD`.
fn password(from_stdin: bool) -> Result<String, CliError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::local(format!("cannot read the password from stdin: {e}")))?;
        let line = line.strip_suffix('\n').unwrap_or(&line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            return Err(CliError::local("no password on stdin"));
        }
        return Ok(line.to_owned());
    }
    match std::env::var("KWS_PASSWORD") {
        Ok(p) if !p.is_empty() => Ok(p),
        _ => Err(CliError::local("no password: set KWS_PASSWORD or pass --password-stdin")),
    }
}

/// The `name=value` of the session cookie a login's `Set-Cookie` sets (`kws_session` or
/// `__Host-kws_session`; else the first cookie it sets).
fn session_cookie(headers: &header::HeaderMap) -> Option<String> {
    let pairs: Vec<&str> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::trim)
        .filter(|pair| pair.split_once('=').is_some_and(|(k, v)| !k.is_empty() && !v.is_empty()))
        .collect();
    let ours =
        pairs.iter().find(|p| p.split_once('=').is_some_and(|(k, _)| k.ends_with("kws_session")));
    ours.or(pairs.first()).map(|p| (*p).to_owned())
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue, SET_COOKIE};

    use super::*;

    #[test]
    fn server_urls_are_http_or_https() {
        assert_eq!(
            server_url("https://kws.example.com/").ok(),
            Some("https://kws.example.com".into())
        );
        assert_eq!(server_url("http://127.0.0.1:8080").ok(), Some("http://127.0.0.1:8080".into()));
        assert!(server_url("kws.example.com").is_err());
        assert!(server_url("https://").is_err());
    }

    #[test]
    fn the_session_cookie_is_read_from_set_cookie() {
        let mut h = HeaderMap::new();
        h.append(SET_COOKIE, HeaderValue::from_static("other=1; Path=/"));
        h.append(SET_COOKIE, HeaderValue::from_static("kws_session=; Max-Age=0"));
        h.append(SET_COOKIE, HeaderValue::from_static("__Host-kws_session=abc; Path=/; Secure"));
        assert_eq!(session_cookie(&h).as_deref(), Some("__Host-kws_session=abc"));
        assert_eq!(session_cookie(&HeaderMap::new()), None);
    }
}
