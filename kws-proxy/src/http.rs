//! A small JSON-over-HTTP(S) client for REST APIs (DNS providers, Caddy's admin API).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, header};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::Value;

/// JSON requests to one provider.
#[derive(Clone)]
pub(crate) struct JsonClient {
    provider: &'static str,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for JsonClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonClient").field("provider", &self.provider).finish()
    }
}

impl JsonClient {
    /// A client trusting the system's roots for `https://` URLs; `http://` works too.
    pub(crate) fn new(provider: &'static str) -> Result<Self, String> {
        install_crypto_provider();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| format!("{provider}: TLS roots: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        // No idle connections kept: Caddy restarts its admin server on /load, and a DNS provider is
        // called a few times per order.
        let client =
            Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build(connector);
        Ok(Self { provider, client })
    }

    /// Sends `body` (if any) to `url`; returns the status and the JSON answer (`Null` if the
    /// body is empty or not JSON).
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), String> {
        let transport = |what: String| format!("{}: {what}", self.provider);
        let mut request = Request::builder().method(method).uri(url);
        if let Some(token) = bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let bytes = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(json.to_string())
            }
            None => Bytes::new(),
        };
        let request =
            request.body(Full::new(bytes)).map_err(|e| transport(format!("request {url}: {e}")))?;
        let response =
            self.client.request(request).await.map_err(|e| transport(format!("{url}: {e}")))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| transport(format!("{url}: reading the answer: {e}")))?
            .to_bytes();
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }
}

/// rustls needs one process-wide crypto provider; kws uses ring. Installing twice is harmless.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
