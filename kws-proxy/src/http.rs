//! A small HTTP client for REST APIs: JSON for DNS providers and Caddy's admin API, text lines for
//! nginx's admin server.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, header};
use hyper_util::{
    client::legacy::{
        Client,
        connect::{Connect, HttpConnector},
    },
    rt::TokioExecutor,
};
#[cfg(any(feature = "acme", feature = "caddy"))]
use serde_json::Value;

/// Why a request got no answer.
#[derive(Debug)]
pub(crate) struct SendError {
    /// What went wrong, naming the provider and the URL.
    pub(crate) message: String,
    /// Whether it failed before the request left (no connection): the server never saw it.
    #[cfg_attr(not(feature = "nginx"), allow(dead_code))]
    pub(crate) unsent: bool,
}

/// Requests to one provider through the connector `C`.
#[derive(Clone)]
pub(crate) struct HttpClient<C> {
    provider: &'static str,
    client: Client<C, Full<Bytes>>,
}

/// A client for `https://` (trusting the system's roots) and `http://` URLs.
#[cfg(any(feature = "acme", feature = "caddy"))]
pub(crate) type HttpsClient = HttpClient<hyper_rustls::HttpsConnector<HttpConnector>>;

impl<C> std::fmt::Debug for HttpClient<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("provider", &self.provider).finish()
    }
}

/// No idle connections kept: Caddy restarts its admin server on /load, nginx's old workers close
/// theirs on a reload, and a DNS provider is called a few times per order.
fn client<C: Connect + Clone + Send + Sync + 'static>(connector: C) -> Client<C, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build(connector)
}

#[cfg(any(feature = "acme", feature = "caddy"))]
impl HttpsClient {
    /// A client trusting the system's roots for `https://` URLs; `http://` works too.
    pub(crate) fn new(provider: &'static str) -> Result<Self, String> {
        install_crypto_provider();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| format!("{provider}: TLS roots: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self { provider, client: client(connector) })
    }
}

#[cfg(feature = "nginx")]
impl HttpClient<HttpConnector> {
    /// A client for plain `http://` URLs only (loopback admin servers).
    pub(crate) fn plain(provider: &'static str) -> Self {
        Self { provider, client: client(HttpConnector::new()) }
    }
}

impl<C: Connect + Clone + Send + Sync + 'static> HttpClient<C> {
    /// Sends `body` (if any) as JSON to `url`; returns the status and the JSON answer (`Null`
    /// if the body is empty or not JSON).
    #[cfg(any(feature = "acme", feature = "caddy"))]
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), String> {
        let body = body.map(|json| ("application/json", Bytes::from(json.to_string())));
        let (status, answer) =
            self.request(method, url, bearer, body).await.map_err(|e| e.message)?;
        Ok((status, serde_json::from_slice(&answer).unwrap_or(Value::Null)))
    }

    /// Sends `body` as plain text to `url`; returns the status and the answer as text.
    #[cfg(feature = "nginx")]
    pub(crate) async fn send_text(
        &self,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        body: String,
    ) -> Result<(StatusCode, String), SendError> {
        let body = Some(("text/plain", Bytes::from(body)));
        let (status, answer) = self.request(method, url, bearer, body).await?;
        Ok((status, String::from_utf8_lossy(&answer).into_owned()))
    }

    async fn request(
        &self,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        body: Option<(&'static str, Bytes)>,
    ) -> Result<(StatusCode, Bytes), SendError> {
        let failed = |what: String, unsent| SendError {
            message: format!("{}: {what}", self.provider),
            unsent,
        };
        let mut request = Request::builder().method(method).uri(url);
        if let Some(token) = bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let bytes = match body {
            Some((content_type, bytes)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                bytes
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(bytes))
            .map_err(|e| failed(format!("request {url}: {e}"), true))?;
        let response = self.client.request(request).await.map_err(|e| {
            let unsent = e.is_connect();
            failed(format!("{url}: {e}"), unsent)
        })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| failed(format!("{url}: reading the answer: {e}"), false))?
            .to_bytes();
        Ok((status, body))
    }
}

/// rustls needs one process-wide crypto provider; kws uses ring. Installing twice is harmless.
#[cfg(any(feature = "acme", feature = "caddy"))]
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
