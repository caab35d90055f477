//! `CaddyProxy`: routes through Caddy's admin API. Every change is one API call that Caddy
//! validates with the whole new configuration and applies atomically: a refused change
//! leaves the running configuration as it was.

use std::{collections::BTreeMap, net::SocketAddr};

use async_trait::async_trait;
use hyper::Method;
use kws_core::Hostname;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::{
    CertFiles, CheckStage, ProxyError, ProxyWriter, Route, RoutePolicy, http::JsonClient,
    table::RouteTable,
};

/// The name of kws's HTTPS server in Caddy's configuration.
const HTTPS_SERVER: &str = "kws_https";
/// The name of kws's plain HTTP server (redirects and plain routes).
const HTTP_SERVER: &str = "kws_http";

/// Where Caddy is and what every route gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaddyConfig {
    /// The admin API, e.g. `http://127.0.0.1:2019`.
    pub admin: String,
    /// Where routes listen for plain HTTP.
    pub http_listen: SocketAddr,
    /// Where routes listen for HTTPS.
    pub https_listen: SocketAddr,
    /// The wildcard certificate.
    pub certificate: CertFiles,
}

/// The Caddy `ProxyWriter`.
///
/// `open` loads kws's base configuration (two servers, the certificate, no routes) into Caddy,
/// replacing what it ran: kws owns that Caddy. Routes live in Caddy's memory and in this
/// writer's table; after a Caddy restart the platform publishes them again from its stores.
#[derive(Debug)]
pub struct CaddyProxy {
    policy: RoutePolicy,
    config: CaddyConfig,
    client: JsonClient,
    routes: Mutex<BTreeMap<Hostname, Route>>,
}

impl CaddyProxy {
    /// Loads the base configuration into the Caddy at `config.admin`.
    pub async fn open(policy: RoutePolicy, config: CaddyConfig) -> Result<Self, ProxyError> {
        let client = JsonClient::new("caddy").map_err(|output| ProxyError::Reload { output })?;
        let proxy = Self { policy, config, client, routes: Mutex::new(BTreeMap::new()) };
        proxy.call(None, Method::POST, "/load", Some(&proxy.base_config())).await?;
        // Caddy restarts its admin server after a load: wait until it answers again.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match proxy.call(None, Method::GET, "/config/", None).await {
                Ok(()) => return Ok(proxy),
                Err(e) if std::time::Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    }

    fn base_config(&self) -> Value {
        let c = &self.config;
        // The last route of each server answers hosts nobody published with 404.
        let not_found = json!({"handle": [{"handler": "static_response", "status_code": 404}]});
        json!({
            "admin": {"listen": c.admin.trim_start_matches("http://")},
            "apps": {
                "http": {"servers": {
                    HTTPS_SERVER: {
                        "listen": [c.https_listen.to_string()],
                        "routes": [not_found],
                        "tls_connection_policies": [{}],
                        "automatic_https": {"disable": true}
                    },
                    HTTP_SERVER: {
                        "listen": [c.http_listen.to_string()],
                        "routes": [not_found],
                        "automatic_https": {"disable": true}
                    }
                }},
                "tls": {"certificates": {"load_files": [{
                    "certificate": c.certificate.chain,
                    "key": c.certificate.key
                }]}}
            }
        })
    }

    /// Makes Caddy read the certificate files again: replacing the `load_files` list makes it
    /// provision its TLS app anew, which Caddy does gracefully (connections in flight finish).
    pub async fn reload_certificate_files(&self) -> Result<(), ProxyError> {
        let _guard = self.routes.lock().await;
        // Caddy skips a change that leaves the configuration as it was: a fresh tag makes
        // this one differ, so the files are read again.
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let files = json!([{
            "certificate": self.config.certificate.chain,
            "key": self.config.certificate.key,
            "tags": [format!("kws-{stamp}")]
        }]);
        self.call(None, Method::PATCH, "/config/apps/tls/certificates/load_files", Some(&files))
            .await
    }

    /// The Caddy routes of `route`: `(server, id, json)`.
    fn caddy_routes(&self, route: &Route) -> Vec<(&'static str, String, Value)> {
        let host = route.host().to_string();
        let proxy = json!({
            "@id": format!("kws-route-{host}"),
            "match": [{"host": [host]}],
            "handle": [{
                "handler": "reverse_proxy",
                "upstreams": [{"dial": route.upstream().to_string()}],
                "transport": {"protocol": "http", "dial_timeout": "5s"}
            }],
            "terminal": true
        });
        if !route.tls() {
            return vec![(HTTP_SERVER, format!("kws-route-{host}"), proxy)];
        }
        let port = self.config.https_listen.port();
        let port = if port == 443 { String::new() } else { format!(":{port}") };
        let redirect = json!({
            "@id": format!("kws-redirect-{host}"),
            "match": [{"host": [host]}],
            "handle": [{
                "handler": "static_response",
                "status_code": 308,
                "headers": {"Location": [format!("https://{host}{port}{{http.request.uri}}")]}
            }],
            "terminal": true
        });
        vec![
            (HTTPS_SERVER, format!("kws-route-{host}"), proxy),
            (HTTP_SERVER, format!("kws-redirect-{host}"), redirect),
        ]
    }

    async fn call(
        &self,
        host: Option<&Hostname>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(), ProxyError> {
        let url = format!("{}{path}", self.config.admin.trim_end_matches('/'));
        let (status, answer) = self
            .client
            .send(method, &url, None, body)
            .await
            .map_err(|output| ProxyError::Reload { output })?;
        if status.is_success() {
            return Ok(());
        }
        let output = format!("HTTP {status}: {answer}");
        Err(match host {
            Some(host) => {
                ProxyError::Rejected { host: host.clone(), stage: CheckStage::WholeConfig, output }
            }
            None => ProxyError::Reload { output },
        })
    }

    /// Removes the Caddy objects of `route`; errors are returned after trying them all.
    async fn remove(&self, route: &Route) -> Result<(), ProxyError> {
        let mut first = None;
        for (_, id, _) in self.caddy_routes(route) {
            if let Err(e) =
                self.call(Some(route.host()), Method::DELETE, &format!("/id/{id}"), None).await
            {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[async_trait]
impl ProxyWriter for CaddyProxy {
    fn policy(&self) -> &RoutePolicy {
        &self.policy
    }

    async fn publish_all(&self, routes: Vec<Route>) -> Result<(), ProxyError> {
        let mut table = self.routes.lock().await;
        let fresh = RouteTable::new(&self.policy, &table).admit(routes)?;
        let mut done: Vec<&Route> = Vec::new();
        for route in &fresh {
            for (server, _, json) in self.caddy_routes(route) {
                // PUT on index 0 inserts before the 404 catch-all.
                let path = format!("/config/apps/http/servers/{server}/routes/0");
                if let Err(e) = self.call(Some(route.host()), Method::PUT, &path, Some(&json)).await
                {
                    let _ = self.remove(route).await;
                    for published in done.iter().rev() {
                        let _ = self.remove(published).await;
                    }
                    return Err(e);
                }
            }
            done.push(route);
        }
        for route in fresh {
            table.insert(route.host().clone(), route);
        }
        Ok(())
    }

    async fn unpublish(&self, host: &Hostname) -> Result<(), ProxyError> {
        let mut table = self.routes.lock().await;
        let Some(route) = table.get(host).cloned() else {
            return Err(ProxyError::NotFound { host: host.clone() });
        };
        self.remove(&route).await?;
        table.remove(host);
        Ok(())
    }

    async fn routes(&self) -> Result<Vec<Route>, ProxyError> {
        Ok(self.routes.lock().await.values().cloned().collect())
    }
}
