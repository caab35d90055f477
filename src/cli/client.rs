//! The HTTP client of the API: a base URL and a bearer token; every answer that is not a
//! success becomes a [`CliError`] from the API's error JSON
//! (`{"error": {"code", "message", "field"?, "request_id"}}`, read in [`super::error`]).

use std::{
    collections::hash_map::RandomState,
    hash::{BuildHasher as _, Hasher as _},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use reqwest::{Method, RequestBuilder, Response, header};
use serde_json::Value;

pub use super::error::CliError;
use super::{
    error::{chain, error_of},
    sse::SseStream,
};

/// What the `User-Agent` header says.
const USER_AGENT: &str = concat!("kws/", env!("CARGO_PKG_VERSION"));

/// How long a request (not a stream) may take: a launch waits for its instance to run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// A client of one server, with or without a token.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client of `server` (`https://host[:port]`) sending `token` as its bearer token.
    pub fn new(server: &str, token: Option<String>) -> Result<Self, CliError> {
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| {
                CliError::Transport(format!("cannot make an HTTP client: {}", chain(&e)))
            })?;
        Ok(Self { base: server.trim_end_matches('/').to_owned(), token, http })
    }

    /// The server's URL.
    pub fn server(&self) -> &str {
        &self.base
    }

    /// A request for `path` (from `/api/v1/…`), with the token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request` (with the request timeout) and answers the response when it is a
    /// success, else its error.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, CliError> {
        self.send_streaming(request.timeout(REQUEST_TIMEOUT)).await
    }

    /// Sends `request` with no overall timeout (for streams).
    async fn send_streaming(&self, request: RequestBuilder) -> Result<Response, CliError> {
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        if response.status().is_success() { Ok(response) } else { Err(error_of(response).await) }
    }

    /// Sends `request` and answers its JSON body (`Null` for an empty one, as of a 204).
    pub async fn json(&self, request: RequestBuilder) -> Result<Value, CliError> {
        let response = self.send(request).await?;
        let bytes = response.bytes().await.map_err(|e| self.transport(&e))?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| CliError::Transport(format!("the server's answer is not JSON: {e}")))
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.json(self.request(Method::GET, path)).await
    }

    /// `POST path` with `body`.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.json(self.request(Method::POST, path).json(body)).await
    }

    /// `POST path` with `body` and a fresh `Idempotency-Key`: a create, resent with the same
    /// key when the connection failed (the server then answers the same object).
    pub async fn create(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        let key = idempotency_key();
        let mut attempt = 0;
        loop {
            let request = self.request(Method::POST, path).header("idempotency-key", &key);
            match self.json(request.json(body)).await {
                Err(CliError::Transport(_)) if attempt < 2 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(attempt)).await;
                }
                answer => return answer,
            }
        }
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<(), CliError> {
        self.send(self.request(Method::DELETE, path)).await.map(drop)
    }

    /// Every item of the paginated list at `path`, following its `next` cursors.
    pub async fn list(&self, path: &str) -> Result<Vec<Value>, CliError> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = format!("{path}?limit=100");
            if let Some(after) = &after {
                url.push_str(&format!("&after={}", segment(after)?));
            }
            let mut page = self.get(&url).await?;
            if let Some(Value::Array(some)) = page.get_mut("items").map(Value::take) {
                items.extend(some);
            }
            match page["next"].as_str() {
                Some(next) if after.as_deref() != Some(next) => after = Some(next.to_owned()),
                _ => return Ok(items),
            }
        }
    }

    /// Opens the Server-Sent Events stream at `path`, resuming after `last_event_id`.
    pub async fn events(
        &self,
        path: &str,
        last_event_id: Option<&str>,
    ) -> Result<SseStream, CliError> {
        let mut request =
            self.request(Method::GET, path).header(header::ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = self.send_streaming(request).await?;
        Ok(SseStream::new(response))
    }

    fn transport(&self, e: &reqwest::Error) -> CliError {
        let what = if e.is_timeout() { "timed out talking to" } else { "cannot reach" };
        CliError::Transport(format!("{what} {}: {}", self.base, chain(e)))
    }
}

/// `raw` as one path segment (or query value): every byte but the unreserved ones
/// percent-encoded, so a name cannot step into another route. `""`, `.` and `..` are refused:
/// a URL resolves them to the parent route.
pub fn segment(raw: &str) -> Result<String, CliError> {
    if matches!(raw, "" | "." | "..") {
        return Err(CliError::local(format!("{raw:?} is not a name")));
    }
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

/// A fresh idempotency key: the time, the process and a random number.
pub fn idempotency_key() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    format!("kws-cli-{nanos:x}-{:x}-{:016x}", std::process::id(), hasher.finish())
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped_and_keys_differ() {
        assert_eq!(segment("web-1"), Ok("web-1".to_owned()));
        assert_eq!(segment("../x?y"), Ok("..%2Fx%3Fy".to_owned()));
        assert!(segment("..").is_err() && segment(".").is_err() && segment("").is_err());
        assert_ne!(idempotency_key(), idempotency_key());
        assert!(idempotency_key().bytes().all(|b| b.is_ascii_graphic()));
    }
}
