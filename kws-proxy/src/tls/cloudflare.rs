//! `Cloudflare`: DNS-01 records through Cloudflare's REST API (v4).

use async_trait::async_trait;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    http::HttpsClient,
    tls::{ChallengeName, DnsError, DnsProvider, TxtRecord},
};

const PROVIDER: &str = "cloudflare";

/// Cloudflare's API base URL.
pub const CLOUDFLARE_API: &str = "https://api.cloudflare.com/client/v4";

/// Cloudflare DNS: finds the zone of a name (`GET /zones?name=`), creates TXT records
/// (`POST /zones/{zone}/dns_records`) and deletes them
/// (`DELETE /zones/{zone}/dns_records/{id}`), authenticated by an API token (`Bearer`) that
/// needs `Zone:Read` and `DNS:Edit`.
#[derive(Clone)]
pub struct Cloudflare {
    base: String,
    token: String,
    ttl: u32,
    client: HttpsClient,
}

impl std::fmt::Debug for Cloudflare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("Cloudflare").field("base", &self.base).finish_non_exhaustive()
    }
}

impl Cloudflare {
    /// The API at `base` (`CLOUDFLARE_API` in production) with API token `token`.
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Result<Self, DnsError> {
        Ok(Self {
            base: base.into().trim_end_matches('/').to_string(),
            token: token.into(),
            ttl: 120,
            client: HttpsClient::new(PROVIDER)
                .map_err(|what| DnsError::Transport { provider: PROVIDER, what })?,
        })
    }

    async fn call(
        &self,
        action: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        missing_ok: bool,
    ) -> Result<(StatusCode, Value), DnsError> {
        let url = format!("{}{path}", self.base);
        let (status, answer) = self
            .client
            .send(method, &url, Some(&self.token), body)
            .await
            .map_err(|what| DnsError::Transport { provider: PROVIDER, what })?;
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(DnsError::Unauthorized { provider: PROVIDER, status: status.as_u16() });
        }
        let success = answer.get("success").and_then(Value::as_bool).unwrap_or(false);
        if status.is_success() && success || missing_ok && status == StatusCode::NOT_FOUND {
            return Ok((status, answer));
        }
        Err(DnsError::Refused {
            provider: PROVIDER,
            action,
            status: status.as_u16(),
            message: answer.get("errors").unwrap_or(&answer).to_string(),
        })
    }

    /// The id of the most specific zone that contains `name`.
    async fn zone_of(&self, name: &ChallengeName) -> Result<String, DnsError> {
        let mut candidate = name.as_str();
        while let Some((_, parent)) = candidate.split_once('.') {
            candidate = parent;
            let (_, answer) = self
                .call("list zones", Method::GET, &format!("/zones?name={parent}"), None, false)
                .await?;
            let zones = answer.get("result").and_then(Value::as_array);
            let id = zones
                .into_iter()
                .flatten()
                .find(|z| z.get("name").and_then(Value::as_str) == Some(parent))
                .and_then(|z| z.get("id").and_then(Value::as_str));
            if let Some(id) = id {
                return Ok(id.to_string());
            }
        }
        Err(DnsError::ZoneNotFound { provider: PROVIDER, name: name.to_string() })
    }
}

#[async_trait]
impl DnsProvider for Cloudflare {
    async fn add_txt(&self, name: &ChallengeName, value: &str) -> Result<TxtRecord, DnsError> {
        let zone = self.zone_of(name).await?;
        let body =
            json!({ "type": "TXT", "name": name.as_str(), "content": value, "ttl": self.ttl });
        let path = format!("/zones/{zone}/dns_records");
        let (status, answer) =
            self.call("create TXT record", Method::POST, &path, Some(&body), false).await?;
        let id = answer.pointer("/result/id").and_then(Value::as_str).ok_or_else(|| {
            DnsError::Transport {
                provider: PROVIDER,
                what: format!(
                    "create TXT record answered HTTP {status} without result.id: {answer}"
                ),
            }
        })?;
        Ok(TxtRecord {
            name: name.clone(),
            value: value.to_string(),
            id: Some(format!("{zone}/{id}")),
        })
    }

    async fn remove_txt(&self, record: &TxtRecord) -> Result<(), DnsError> {
        let Some((zone, id)) = record.id.as_deref().and_then(|id| id.split_once('/')) else {
            return Err(DnsError::Transport {
                provider: PROVIDER,
                what: format!("record {} has no Cloudflare id", record.name),
            });
        };
        let path = format!("/zones/{zone}/dns_records/{id}");
        self.call("delete TXT record", Method::DELETE, &path, None, true).await.map(|_| ())
    }
}
