//! The client of nginx's admin server for kws: the only door to the route table, listening on a
//! loopback address and answering only requests that carry the token of `admin.conf` (a file of
//! kws's folder, mode 0600, that nginx's master reads).

use std::io::Read as _;

use hyper::{Method, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::{http::HttpClient, nginx::NginxConfig};

/// The admin server's one location.
const PATH: &str = "/kws/routes";
/// How `admin.conf` carries the token.
const TOKEN_PREFIX: &str = "if ($http_authorization != \"Bearer ";

/// Why the admin server did not apply a batch.
#[derive(Debug)]
pub(crate) enum AdminError {
    /// nginx answered and refused the whole batch (a line it does not accept, or no room).
    Refused(String),
    /// No answer from kws's admin server. `maybe_applied` is true when the request was sent and
    /// the answer was lost, so nginx may have applied it.
    Unavailable { output: String, maybe_applied: bool },
}

/// Requests to nginx's admin server.
#[derive(Debug)]
pub(crate) struct Admin {
    client: HttpClient<HttpConnector>,
    url: String,
    token: String,
}

impl Admin {
    pub(crate) fn new(config: &NginxConfig, token: String) -> Self {
        let url = format!("http://{}{PATH}", config.admin_listen);
        Self { client: HttpClient::plain("nginx admin server"), url, token }
    }

    /// The token requests carry.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// Applies `batch` (lines of `journal::Op`) as a whole, or none of it. With `replace`, the
    /// batch is the whole table and every route it does not name goes.
    pub(crate) async fn apply(&self, batch: String, replace: bool) -> Result<(), AdminError> {
        let url = if replace { format!("{}?replace=1", self.url) } else { self.url.clone() };
        let (status, answer) =
            self.client.send_text(Method::POST, &url, Some(&self.token), batch).await.map_err(
                |e| AdminError::Unavailable {
                    output: format!("{} (is nginx running with kws's http.conf?)", e.message),
                    maybe_applied: !e.unsent,
                },
            )?;
        match status {
            StatusCode::OK if answer.starts_with("applied ") => Ok(()),
            StatusCode::BAD_REQUEST | StatusCode::INSUFFICIENT_STORAGE => {
                Err(AdminError::Refused(answer.trim().to_string()))
            }
            status => Err(AdminError::Unavailable {
                output: self.unexpected(status, &answer),
                maybe_applied: false,
            }),
        }
    }

    /// The table nginx serves now: its lines, after a `# capacity <bytes> free <bytes>` line.
    pub(crate) async fn table(&self) -> Result<String, AdminError> {
        let unavailable = |output| AdminError::Unavailable { output, maybe_applied: false };
        let (status, answer) = self
            .client
            .send_text(Method::GET, &self.url, Some(&self.token), String::new())
            .await
            .map_err(|e| unavailable(e.message))?;
        match status {
            StatusCode::OK if answer.starts_with("# capacity ") => Ok(answer),
            status => Err(unavailable(self.unexpected(status, &answer))),
        }
    }

    fn unexpected(&self, status: StatusCode, answer: &str) -> String {
        let hint = if status == StatusCode::FORBIDDEN {
            "nginx runs with another admin token: reload it so it reads kws's admin.conf"
        } else {
            "this is not kws's admin server: does nginx include kws's http.conf, and was it \
             reloaded since?"
        };
        format!("{} answered HTTP {status} ({}): {hint}", self.url, answer.trim())
    }
}

/// The text of `admin.conf`: the token check of the admin server.
pub(crate) fn admin_conf(token: &str) -> String {
    format!(
        "# Written by kws: the token of kws's admin server (kws reads it back on open).\n\
         {TOKEN_PREFIX}{token}\") {{\n    return 403;\n}}\n"
    )
}

/// The token of an `admin.conf` text, if it holds a valid one.
pub(crate) fn token_of(admin_conf: &str) -> Option<String> {
    let line = admin_conf.lines().find_map(|l| l.strip_prefix(TOKEN_PREFIX))?;
    let token = line.strip_suffix("\") {")?;
    (token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit())).then(|| token.to_string())
}

/// The token of the `admin.conf` at `path`, or a new random one if it has none.
pub(crate) fn token_at(path: &std::path::Path) -> std::io::Result<String> {
    if let Some(token) = std::fs::read_to_string(path).ok().as_deref().and_then(token_of) {
        return Ok(token);
    }
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_reads_back_from_admin_conf_and_nothing_else_passes() {
        let token = "0123456789abcdef0123456789abcdef";
        assert_eq!(token_of(&admin_conf(token)).as_deref(), Some(token));
        assert_eq!(token_of(&admin_conf("short")), None);
        assert_eq!(token_of(&admin_conf("0123456789abcdef0123456789abcdeg")), None);
        assert_eq!(token_of("# nothing here\n"), None);
    }
}
