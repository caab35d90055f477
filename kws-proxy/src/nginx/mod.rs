//! `NginxProxy`: the nginx backend. One file per route in kws's own folder, written
//! atomically, checked alone then with the whole configuration, then reloaded; on any failure
//! the previous files come back and nginx keeps serving what it served.

mod command;
mod config;
mod files;
mod local;
mod render;
mod workers;

use std::{collections::BTreeMap, path::PathBuf};

use async_trait::async_trait;
use kws_core::Hostname;
use tokio::{sync::Mutex, task::JoinSet};

pub use config::{NginxConfig, ProxyTimeouts};
pub use local::{LocalNginx, self_signed_certificate};

use crate::{CheckStage, ProxyError, ProxyWriter, Route, RoutePolicy, table::RouteTable};
use files::Change;

/// How many `nginx -t` checks of single files run at once.
const PARALLEL_CHECKS: usize = 4;

/// The nginx `ProxyWriter`.
///
/// One `NginxProxy` owns its folder: changes are serialized inside it, and two writers on one
/// folder (or hand edits of route files) are not supported. Routes are read back from the
/// files' first line (`# kws-route <json>`) on `open`.
#[derive(Debug)]
pub struct NginxProxy {
    policy: RoutePolicy,
    config: NginxConfig,
    routes: Mutex<BTreeMap<Hostname, Route>>,
}

impl NginxProxy {
    /// Opens kws's folder: creates it if needed, (re)writes `http.conf` and `shared.conf`,
    /// removes leftover temporary files and reads the published routes back from their files.
    /// It does not reload nginx.
    pub async fn open(policy: RoutePolicy, config: NginxConfig) -> Result<Self, ProxyError> {
        config.check_paths()?;
        for dir in [config.dir.clone(), config.routes_dir(), config.check_dir().join("tmp")] {
            tokio::fs::create_dir_all(&dir).await.map_err(ProxyError::io("create", dir))?;
        }
        files::write_atomic(&config.shared_conf_path(), &render::shared_conf()).await?;
        files::write_atomic(&config.http_conf_path(), &render::http_conf(&config)).await?;
        let routes = read_routes(&config).await?;
        Ok(Self { policy, config, routes: Mutex::new(routes) })
    }

    /// The configuration this backend drives.
    pub fn config(&self) -> &NginxConfig {
        &self.config
    }

    /// Checks the whole configuration, then reloads nginx (e.g. after a new certificate).
    pub async fn reload(&self) -> Result<(), ProxyError> {
        let _guard = self.routes.lock().await;
        self.check_whole_and_reload(None).await
    }

    fn route_path(&self, host: &Hostname) -> PathBuf {
        self.config.routes_dir().join(format!("{host}.conf"))
    }

    /// Checks every rendered file alone (from its temporary path); removes them all on failure.
    async fn check_alone(&self, staged: &[(Hostname, PathBuf)]) -> Result<(), ProxyError> {
        let mut failure = None;
        for chunk in staged.chunks(PARALLEL_CHECKS) {
            let mut checks = JoinSet::new();
            for (host, tmp) in chunk {
                let config = self.config.clone();
                let (host, tmp) = (host.clone(), tmp.clone());
                checks.spawn(async move {
                    let wrapper = config.check_dir().join(format!("{host}.conf"));
                    files::write_atomic(&wrapper, &render::wrapper_conf(&config, &tmp)).await?;
                    let result = command::test(&config, &wrapper).await;
                    files::remove(&wrapper).await?;
                    result.map_err(|output| ProxyError::Rejected {
                        host,
                        stage: CheckStage::RouteAlone,
                        output,
                    })
                });
            }
            while let Some(joined) = checks.join_next().await {
                let result = joined.unwrap_or_else(|e| {
                    Err(ProxyError::Rejected {
                        host: chunk[0].0.clone(),
                        stage: CheckStage::RouteAlone,
                        output: format!("the check of this batch did not finish: {e}"),
                    })
                });
                if let Err(e) = result {
                    failure.get_or_insert(e);
                }
            }
            if failure.is_some() {
                break;
            }
        }
        match failure {
            None => Ok(()),
            Some(e) => {
                for (_, tmp) in staged {
                    let _ = files::remove(tmp).await;
                }
                Err(e)
            }
        }
    }

    /// Checks the whole configuration and reloads; on failure undoes `changes` (newest first)
    /// so nginx, which was never reloaded, and the files agree again.
    async fn commit(&self, host: &Hostname, changes: &[Change]) -> Result<(), ProxyError> {
        let result = self.check_whole_and_reload(Some(host)).await;
        if result.is_err() {
            for change in changes.iter().rev() {
                if let Err(e) = change.undo().await {
                    tracing::error!(path = %change.path.display(), error = %e, "undo failed");
                }
            }
        }
        result
    }

    async fn check_whole_and_reload(&self, host: Option<&Hostname>) -> Result<(), ProxyError> {
        if let Err(output) = command::test(&self.config, &self.config.main_config).await {
            return Err(match host {
                Some(host) => ProxyError::Rejected {
                    host: host.clone(),
                    stage: CheckStage::WholeConfig,
                    output,
                },
                None => ProxyError::Reload { output },
            });
        }
        command::reload(&self.config).await.map_err(|output| ProxyError::Reload { output })
    }
}

#[async_trait]
impl ProxyWriter for NginxProxy {
    fn policy(&self) -> &RoutePolicy {
        &self.policy
    }

    async fn publish_all(&self, routes: Vec<Route>) -> Result<(), ProxyError> {
        let mut table = self.routes.lock().await;
        let fresh = RouteTable::new(&self.policy, &table).admit(routes)?;
        let Some(first) = fresh.first().map(|r| r.host().clone()) else { return Ok(()) };
        let mut staged: Vec<(Hostname, PathBuf)> = Vec::with_capacity(fresh.len());
        for route in &fresh {
            let tmp = files::tmp_path(&self.route_path(route.host()));
            let text = render::route_conf(&self.config, route);
            if let Err(e) = tokio::fs::write(&tmp, text).await {
                for (_, t) in &staged {
                    let _ = files::remove(t).await;
                }
                let _ = files::remove(&tmp).await;
                return Err(ProxyError::io("write", tmp)(e));
            }
            staged.push((route.host().clone(), tmp));
        }
        self.check_alone(&staged).await?;
        let mut changes = Vec::with_capacity(staged.len());
        for (host, tmp) in &staged {
            let path = self.route_path(host);
            if let Err(e) = files::rename(tmp, &path).await {
                for change in changes.iter().rev() {
                    let _ = Change::undo(change).await;
                }
                for (_, t) in &staged {
                    let _ = files::remove(t).await;
                }
                return Err(e);
            }
            changes.push(Change { path, previous: None });
        }
        self.commit(&first, &changes).await?;
        for route in fresh {
            table.insert(route.host().clone(), route);
        }
        Ok(())
    }

    async fn unpublish(&self, host: &Hostname) -> Result<(), ProxyError> {
        let mut table = self.routes.lock().await;
        if !table.contains_key(host) {
            return Err(ProxyError::NotFound { host: host.clone() });
        }
        let path = self.route_path(host);
        let previous =
            tokio::fs::read_to_string(&path).await.map_err(ProxyError::io("read", &path))?;
        files::remove(&path).await?;
        self.commit(host, &[Change { path, previous: Some(previous) }]).await?;
        table.remove(host);
        Ok(())
    }

    async fn routes(&self) -> Result<Vec<Route>, ProxyError> {
        Ok(self.routes.lock().await.values().cloned().collect())
    }
}

/// Reads the routes back from their files; removes leftover temporary files.
async fn read_routes(config: &NginxConfig) -> Result<BTreeMap<Hostname, Route>, ProxyError> {
    let dir = config.routes_dir();
    let mut entries = tokio::fs::read_dir(&dir).await.map_err(ProxyError::io("read", &dir))?;
    let mut routes = BTreeMap::new();
    while let Some(entry) = entries.next_entry().await.map_err(ProxyError::io("read", &dir))? {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            files::remove(&path).await?;
            continue;
        }
        let Some(stem) = name.strip_suffix(".conf") else { continue };
        let text = tokio::fs::read_to_string(&path).await.map_err(ProxyError::io("read", &path))?;
        let corrupt = |why: String| ProxyError::CorruptRouteFile { path: path.clone(), why };
        let json = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix(render::HEADER))
            .ok_or_else(|| corrupt(format!("no \"{}\" first line", render::HEADER.trim())))?;
        let route: Route =
            serde_json::from_str(json).map_err(|e| corrupt(format!("bad header: {e}")))?;
        if route.host().to_string() != stem {
            return Err(corrupt(format!("header names host {}", route.host())));
        }
        routes.insert(route.host().clone(), route.normalized());
    }
    Ok(routes)
}
