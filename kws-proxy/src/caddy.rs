//! `CaddyProxy`: routes through Caddy's admin API. Every change is validated by Caddy with the
//! whole new configuration and applied atomically (a refused change leaves the running
//! configuration as it was), and persisted in kws's route journal, from which `restore` loads
//! every route again after a Caddy restart.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf};

use async_trait::async_trait;
use hyper::Method;
use kws_core::Hostname;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::{
    CertFiles, CheckStage, ProxyError, ProxyWriter, Route, RoutePolicy, files,
    http::HttpsClient,
    journal::{Op, PersistedRoutes},
    table::RouteTable,
};

/// The handlers of an IDE route checked by the gate at `gate` before `upstream`: the host's
/// `/_kws/enter` goes to the gate (the rest of `/_kws/` is 404); anything else is asked about first (`forward_auth`: a 2xx goes
/// on, a 401 redirects to the sign-in the gate names, a 403 is a 404), and the IDE cookie is
/// taken out of what the IDE gets. The check learns a WebSocket's two ends as nginx's does
/// (`X-Kws-Peer`, `X-Kws-Local`); Caddy 2.6 names no local address, so the local end is the
/// listening port `local_port` on any address.
fn gated(gate: SocketAddr, upstream: Value, local_port: u16) -> Vec<Value> {
    // What only the proxy may tell the gate; a browser's own values never reach it.
    const SPOOFABLE: [&str; 3] = ["X-Kws-Upgrade", "X-Kws-Peer", "X-Kws-Local"];
    let gate = gate.to_string();
    let check = json!({
        "handler": "reverse_proxy",
        "upstreams": [{"dial": gate}],
        "rewrite": {"method": "GET", "uri": "/_kws/check"},
        "headers": {"request": {"set": {
            "X-Original-URI": ["{http.request.uri}"],
            "X-Kws-Upgrade": ["{http.request.header.Upgrade}"],
            "X-Kws-Peer": ["{http.request.remote.host} {http.request.remote.port}"],
            "X-Kws-Local": [format!("0.0.0.0 {local_port}")]
        }}},
        "handle_response": [
            {"match": {"status_code": [2]}, "routes": [{"handle": [{"handler": "vars"}]}]},
            {"match": {"status_code": [401]}, "routes": [{"handle": [{
                "handler": "static_response",
                "status_code": 302,
                "headers": {"Location": ["{http.reverse_proxy.header.X-Kws-Signin}"]}
            }]}]},
            {"match": {"status_code": [403]}, "routes": [{"handle": [{
                "handler": "static_response", "status_code": 404
            }]}]}
        ]
    });
    let strip = json!({"handler": "headers", "request": {"replace": {"Cookie": [{
        "search_regexp": "(^|;)\\s*(__Host-)?kws_ide=[^;]*",
        "replace": "$1"
    }]}}});
    vec![json!({"handler": "subroute", "routes": [
        {"match": [{"path": ["/_kws/enter"]}],
         "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": gate}],
                     "headers": {"request": {"delete": SPOOFABLE}}}],
         "terminal": true},
        {"match": [{"path": ["/_kws/*"]}],
         "handle": [{"handler": "static_response", "status_code": 404}],
         "terminal": true},
        {"handle": [check, strip, upstream]}
    ]})]
}

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
    /// kws's own folder for this Caddy: `dir/routes.journal` (the routes kws persisted) and
    /// `dir/lock` (held by the one `CaddyProxy` that writes it).
    pub dir: PathBuf,
    /// Where the IDE gate answers (kwsd), as in `NginxConfig::ide_gate`: every request and
    /// WebSocket upgrade of an IDE route is checked at its `/_kws/check` first (Caddy's
    /// `forward_auth`), and an IDE host's `/_kws/…` is the gate's. `None` passes IDE routes
    /// unchecked.
    pub ide_gate: Option<SocketAddr>,
}

/// The Caddy `ProxyWriter`.
///
/// `open` loads kws's configuration (two servers, the certificate, and every route of the
/// journal) into Caddy, replacing what it ran: kws owns that Caddy. A change is appended to the
/// journal and flushed, then applied through the admin API; if Caddy refuses it or cannot be
/// reached, it is cut off the journal again. A batch of more than one route is one `/load` of
/// the whole new configuration, so it is all or nothing inside Caddy too. Caddy keeps its
/// routes in memory only: after Caddy restarts, `restore` (or `open`) loads them again.
#[derive(Debug)]
pub struct CaddyProxy {
    policy: RoutePolicy,
    config: CaddyConfig,
    client: HttpsClient,
    routes: Mutex<PersistedRoutes>,
    _lock: files::FolderLock,
}

impl CaddyProxy {
    /// Takes kws's folder, reads the journal back and loads the configuration with every
    /// route into the Caddy at `config.admin`.
    pub async fn open(policy: RoutePolicy, config: CaddyConfig) -> Result<Self, ProxyError> {
        let client =
            HttpsClient::new("caddy").map_err(|output| ProxyError::Unavailable { output })?;
        tokio::fs::create_dir_all(&config.dir)
            .await
            .map_err(ProxyError::io("create", &config.dir))?;
        let lock = files::lock_folder(&config.dir.join("lock"))?;
        let routes = PersistedRoutes::open(&config.dir.join("routes.journal")).await?;
        let proxy = Self { policy, config, client, routes: Mutex::new(routes), _lock: lock };
        proxy.restore().await?;
        Ok(proxy)
    }

    /// Loads kws's whole configuration, with every route kws persisted, into Caddy again (after
    /// a Caddy restart, which forgets them).
    pub async fn restore(&self) -> Result<(), ProxyError> {
        let routes = self.routes.lock().await;
        self.load(None, routes.table()).await
    }

    /// `/load`s the configuration with the routes of `table`, then waits until Caddy's admin
    /// server, which restarts after a load, answers again.
    async fn load(
        &self,
        host: Option<&Hostname>,
        table: &BTreeMap<Hostname, Route>,
    ) -> Result<(), ProxyError> {
        self.call(host, Method::POST, "/load", Some(&self.full_config(table))).await?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match self.call(None, Method::GET, "/config/", None).await {
                Ok(()) => return Ok(()),
                Err(e) if std::time::Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    }

    /// kws's configuration with the routes of `table`, each server's ending with the 404 that
    /// answers hosts nobody published.
    fn full_config(&self, table: &BTreeMap<Hostname, Route>) -> Value {
        let c = &self.config;
        let not_found = json!({"handle": [{"handler": "static_response", "status_code": 404}]});
        let (mut https, mut http) = (Vec::new(), Vec::new());
        for route in table.values() {
            for (server, _, json) in self.caddy_routes(route) {
                if server == HTTPS_SERVER { https.push(json) } else { http.push(json) }
            }
        }
        https.push(not_found.clone());
        http.push(not_found);
        json!({
            "admin": {"listen": c.admin.trim_start_matches("http://")},
            "apps": {
                "http": {"servers": {
                    HTTPS_SERVER: {
                        "listen": [c.https_listen.to_string()],
                        "routes": https,
                        "tls_connection_policies": [{}],
                        "automatic_https": {"disable": true}
                    },
                    HTTP_SERVER: {
                        "listen": [c.http_listen.to_string()],
                        "routes": http,
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

    /// The Caddy routes of `route`: `(server, id, json)`. An id names its server, so a route
    /// that moves between servers (TLS on or off) never has two objects with one id.
    fn caddy_routes(&self, route: &Route) -> Vec<(&'static str, String, Value)> {
        let host = route.host().to_string();
        let id = |server: &str| format!("kws-{server}-{host}");
        let upstream = json!({
            "handler": "reverse_proxy",
            "upstreams": [{"dial": route.upstream().to_string()}],
            "transport": {"protocol": "http", "dial_timeout": "5s"}
        });
        let handle = match (route.kind(), self.config.ide_gate) {
            (crate::RouteKind::Ide, Some(gate)) => {
                let c = &self.config;
                let port = if route.tls() { c.https_listen.port() } else { c.http_listen.port() };
                gated(gate, upstream, port)
            }
            _ => vec![upstream],
        };
        let proxy = |server: &str| {
            json!({
                "@id": id(server),
                "match": [{"host": [host]}],
                "handle": handle,
                "terminal": true
            })
        };
        if !route.tls() {
            return vec![(HTTP_SERVER, id(HTTP_SERVER), proxy(HTTP_SERVER))];
        }
        let port = self.config.https_listen.port();
        let port = if port == 443 { String::new() } else { format!(":{port}") };
        let redirect = json!({
            "@id": id(HTTP_SERVER),
            "match": [{"host": [host]}],
            "handle": [{
                "handler": "static_response",
                "status_code": 308,
                "headers": {"Location": [format!("https://{host}{port}{{http.request.uri}}")]}
            }],
            "terminal": true
        });
        vec![
            (HTTPS_SERVER, id(HTTPS_SERVER), proxy(HTTPS_SERVER)),
            (HTTP_SERVER, id(HTTP_SERVER), redirect),
        ]
    }

    /// The steps that turn the Caddy objects of `before` into those of `after`: new objects
    /// first, objects that stay replaced in place, objects that go last, so a request always
    /// finds one of the two routes.
    fn steps(&self, before: Option<&Route>, after: Option<&Route>) -> Vec<Step> {
        let old = before.map(|r| self.caddy_routes(r)).unwrap_or_default();
        let new = after.map(|r| self.caddy_routes(r)).unwrap_or_default();
        let mut steps = Vec::new();
        for (server, id, json) in &new {
            match old.iter().find(|(_, old_id, _)| old_id == id) {
                Some((_, _, old_json)) => steps.push(Step::Patch {
                    id: id.clone(),
                    json: json.clone(),
                    undo: old_json.clone(),
                }),
                None => steps.push(Step::Put { server, id: id.clone(), json: json.clone() }),
            }
        }
        for (server, id, json) in &old {
            if !new.iter().any(|(_, new_id, _)| new_id == id) {
                steps.push(Step::Delete { server, id: id.clone(), undo: json.clone() });
            }
        }
        steps
    }

    /// Runs `steps` in order; on failure undoes those done, newest first.
    async fn run(&self, host: &Hostname, steps: Vec<Step>) -> Result<(), ProxyError> {
        for (done, step) in steps.iter().enumerate() {
            if let Err(e) = self.step(host, step, false).await {
                for step in steps[..done].iter().rev() {
                    if let Err(undo) = self.step(host, step, true).await {
                        tracing::error!(error = %undo, %host, "cannot undo a Caddy change");
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    async fn step(&self, host: &Hostname, step: &Step, undo: bool) -> Result<(), ProxyError> {
        let put = |server: &str| format!("/config/apps/http/servers/{server}/routes/0");
        let id_path = |id: &str| format!("/id/{id}");
        // PUT on index 0 inserts before the 404 catch-all.
        let (method, path, body) = match (step, undo) {
            (Step::Put { server, json, .. }, false) => (Method::PUT, put(server), Some(json)),
            (Step::Put { id, .. }, true) => (Method::DELETE, id_path(id), None),
            (Step::Patch { id, json, .. }, false) => (Method::PATCH, id_path(id), Some(json)),
            (Step::Patch { id, undo, .. }, true) => (Method::PATCH, id_path(id), Some(undo)),
            (Step::Delete { id, .. }, false) => (Method::DELETE, id_path(id), None),
            (Step::Delete { server, undo, .. }, true) => (Method::PUT, put(server), Some(undo)),
        };
        self.call(Some(host), method, &path, body).await
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
            .map_err(|output| ProxyError::Unavailable { output })?;
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
}

/// One change of Caddy's configuration, with what undoes it.
#[derive(Debug)]
enum Step {
    /// Insert a new object into `server`'s routes.
    Put { server: &'static str, id: String, json: Value },
    /// Replace the object `id` in place.
    Patch { id: String, json: Value, undo: Value },
    /// Remove the object `id` (of `server`).
    Delete { server: &'static str, id: String, undo: Value },
}

#[async_trait]
impl ProxyWriter for CaddyProxy {
    fn policy(&self) -> &RoutePolicy {
        &self.policy
    }

    async fn publish_all(&self, routes: Vec<Route>) -> Result<(), ProxyError> {
        let mut persisted = self.routes.lock().await;
        let fresh = RouteTable::new(&self.policy, persisted.table()).admit(routes)?;
        let ops: Vec<Op> = fresh.iter().cloned().map(Op::Put).collect();
        match fresh.as_slice() {
            [] => Ok(()),
            [route] => {
                let change = self.run(route.host(), self.steps(None, Some(route)));
                persisted.commit(ops, change).await
            }
            [first, ..] => {
                let mut next = persisted.table().clone();
                next.extend(fresh.iter().map(|r| (r.host().clone(), r.clone())));
                persisted.commit(ops, self.load(Some(first.host()), &next)).await
            }
        }
    }

    async fn replace(&self, route: Route) -> Result<(), ProxyError> {
        let mut persisted = self.routes.lock().await;
        self.policy.check(&route)?;
        let Some(before) = persisted.table().get(route.host()).cloned() else {
            return Err(ProxyError::NotFound { host: route.host().clone() });
        };
        if before == route {
            return Ok(());
        }
        let change = self.run(route.host(), self.steps(Some(&before), Some(&route)));
        persisted.commit(vec![Op::Put(route.clone())], change).await
    }

    async fn unpublish(&self, host: &Hostname) -> Result<(), ProxyError> {
        let mut persisted = self.routes.lock().await;
        let Some(route) = persisted.table().get(host).cloned() else {
            return Err(ProxyError::NotFound { host: host.clone() });
        };
        let change = self.run(host, self.steps(Some(&route), None));
        persisted.commit(vec![Op::Remove(host.clone())], change).await
    }

    async fn routes(&self) -> Result<Vec<Route>, ProxyError> {
        Ok(self.routes.lock().await.table().values().cloned().collect())
    }
}
