//! `ChallTestSrv`: the DNS provider of pebble-challtestsrv's management API (tests only).

use async_trait::async_trait;
use hyper::Method;
use serde_json::json;

use crate::{
    http::HttpsClient,
    tls::{ChallengeName, DnsError, DnsProvider, TxtRecord},
};

const PROVIDER: &str = "pebble-challtestsrv";

/// pebble-challtestsrv's management API (`POST /set-txt`, `POST /clear-txt`).
///
/// `remove_txt` clears every value of the record's name (challtestsrv has no per-value
/// removal), which the issuer only does once the whole order is over.
#[derive(Debug, Clone)]
pub struct ChallTestSrv {
    base: String,
    client: HttpsClient,
}

impl ChallTestSrv {
    /// The management API at `base`, e.g. `http://127.0.0.1:8055`.
    pub fn new(base: impl Into<String>) -> Result<Self, DnsError> {
        Ok(Self {
            base: base.into().trim_end_matches('/').to_string(),
            client: HttpsClient::new(PROVIDER)
                .map_err(|what| DnsError::Transport { provider: PROVIDER, what })?,
        })
    }

    async fn post(&self, action: &'static str, body: serde_json::Value) -> Result<(), DnsError> {
        let url = format!("{}/{action}", self.base);
        let (status, answer) = self
            .client
            .send(Method::POST, &url, None, Some(&body))
            .await
            .map_err(|what| DnsError::Transport { provider: PROVIDER, what })?;
        if status.is_success() {
            Ok(())
        } else {
            Err(DnsError::Refused {
                provider: PROVIDER,
                action,
                status: status.as_u16(),
                message: answer.to_string(),
            })
        }
    }
}

#[async_trait]
impl DnsProvider for ChallTestSrv {
    async fn add_txt(&self, name: &ChallengeName, value: &str) -> Result<TxtRecord, DnsError> {
        self.post("set-txt", json!({ "host": format!("{name}."), "value": value })).await?;
        Ok(TxtRecord { name: name.clone(), value: value.to_string(), id: None })
    }

    async fn remove_txt(&self, record: &TxtRecord) -> Result<(), DnsError> {
        self.post("clear-txt", json!({ "host": format!("{}.", record.name) })).await
    }
}
