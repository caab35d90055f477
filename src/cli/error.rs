//! Why a command failed: [`CliError`], with the API's error JSON
//! (`{"error": {"code", "message", "field"?, "request_id"}}`) read into it.

use std::{fmt, process::ExitCode};

use reqwest::{Response, StatusCode};
use serde_json::Value;

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// The API answered an error.
    Api {
        /// The HTTP status.
        status: u16,
        /// The API's stable code (`not_found`, `unavailable`, …; `http_<status>` when the
        /// answer was not the API's error JSON).
        code: String,
        /// The API's message.
        message: String,
        /// The field of the request the error is about, if any.
        field: Option<String>,
        /// The request's id, for the server's logs.
        request_id: Option<String>,
    },
    /// The server could not be reached, or its answer could not be read.
    Transport(String),
    /// Something on this side: arguments, the credentials file, a file to read.
    Local(String),
    /// Standard output was closed by its reader.
    BrokenPipe,
}

impl CliError {
    /// A local error saying `message`.
    pub fn local(message: impl Into<String>) -> Self {
        Self::Local(message.into())
    }

    /// The HTTP status, for an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The exit code a command that failed so exits with.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::BrokenPipe => ExitCode::SUCCESS,
            Self::Local(_) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let one_line = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        match self {
            Self::Api { status, code, message, .. } => {
                write!(f, "{} ({code}, HTTP {status})", one_line(message))
            }
            Self::Transport(m) | Self::Local(m) => f.write_str(&one_line(m)),
            Self::BrokenPipe => f.write_str("standard output is closed"),
        }
    }
}

impl std::error::Error for CliError {}

/// `e` and its sources, as one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// The error of an answer that is not a success: the API's error JSON, or for any other body
/// (a proxy's page) `http_<status>` with the start of the body.
pub async fn error_of(response: Response) -> CliError {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    api_error(status, &text)
}

fn api_error(status: StatusCode, text: &str) -> CliError {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let error = &body["error"];
    let string = |v: &Value| v.as_str().map(str::to_owned);
    match (string(&error["code"]), string(&error["message"])) {
        (Some(code), Some(message)) => CliError::Api {
            status: status.as_u16(),
            code,
            message,
            field: string(&error["field"]),
            request_id: string(&error["request_id"]),
        },
        _ => {
            let reason = status.canonical_reason().unwrap_or("error");
            let start: String = text.trim().chars().take(200).collect();
            let message = if start.is_empty() { reason.to_owned() } else { start };
            CliError::Api {
                status: status.as_u16(),
                code: format!("http_{}", status.as_u16()),
                message,
                field: None,
                request_id: None,
            }
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_error_reads_code_and_message() {
        let body =
            r#"{"error":{"code":"not_found","message":"tenant x not found","request_id":"r1"}}"#;
        let e = api_error(StatusCode::NOT_FOUND, body);
        assert_eq!(e.to_string(), "tenant x not found (not_found, HTTP 404)");
        assert_eq!(e.status(), Some(404));
    }

    #[test]
    fn another_body_is_http_status() {
        let e = api_error(StatusCode::BAD_GATEWAY, "<html>\nbad\ngateway</html>");
        assert_eq!(e.to_string(), "<html> bad gateway</html> (http_502, HTTP 502)");
        let e = api_error(StatusCode::BAD_GATEWAY, "");
        assert_eq!(e.to_string(), "Bad Gateway (http_502, HTTP 502)");
    }
}
