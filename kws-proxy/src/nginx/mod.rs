//! `NginxProxy`: the nginx backend. Routes are lines of a table in nginx's shared memory
//! (`lua_shared_dict`, read by every worker at request time through Debian's Lua module), changed
//! through a loopback admin server with no reload, and persisted in kws's journal, which nginx
//! reads when it starts. nginx's configuration holds no route, so it stays the same size
//! whatever their number, and a change costs the same at 10 routes and at 10,000.

mod admin;
mod command;
mod config;
mod local;
mod render;
mod workers;

use std::collections::BTreeMap;

use async_trait::async_trait;
use kws_core::Hostname;
use tokio::sync::Mutex;

pub use config::{DEFAULT_ROUTE_TABLE_BYTES, NginxConfig, ProxyTimeouts};
pub use local::{LocalNginx, Stop, lua_modules, self_signed_certificate};

use crate::{
    CheckStage, ProxyError, ProxyWriter, Route, RoutePolicy, files,
    journal::{Op, PersistedRoutes, batch_text},
    table::RouteTable,
};
use admin::{Admin, AdminError};

/// The nginx `ProxyWriter`.
///
/// A change is checked by kws (`RoutePolicy`, the typed `Route`), appended to the journal as
/// one committed batch and flushed to disk, then sent to nginx's admin server, which checks the
/// whole batch again (every line, every upstream an IP literal and a port) before it applies
/// any of it. If nginx refuses or cannot be reached, the batch is cut off the journal again and
/// nothing of it serves. When a call returns `Ok`, every worker serves the change: the table is
/// shared memory, and no reload happens.
///
/// # Atomicity
/// - A batch (`publish_all`) is all or nothing, in the journal (a crash leaves at most one batch
///   without its commit line, which every reader skips) and in nginx (its admin server applies a
///   checked batch in one Lua call and undoes it whole if the table has no room). While it
///   applies, a request on another worker may already see the batch's first routes: routes
///   appear host by host within that call, and a failed batch never stays half applied.
/// - `replace` swaps one host's route in one table write: a request sees the old route or the
///   new one, never neither.
/// - One `NginxProxy` owns its folder: changes are serialized inside it, and it holds an
///   exclusive lock on `dir/lock` (`flock`) while it lives, so a second writer, in this process or
///   another, is refused (`ProxyError::Locked`). The kernel drops the lock when the process dies.
///
/// # Restarts
/// nginx reads the journal in `init_by_lua` when it starts, so after a restart (or a crash) it
/// serves every committed route before its workers accept a connection. A reload keeps the
/// table. `open` (kws's own restart) reads the journal back and, if nginx runs, makes nginx's
/// table match it, which also repairs a crash of kws between the journal and nginx.
#[derive(Debug)]
pub struct NginxProxy {
    policy: RoutePolicy,
    config: NginxConfig,
    admin: Admin,
    state: Mutex<State>,
    _lock: files::FolderLock,
}

#[derive(Debug)]
struct State {
    routes: PersistedRoutes,
    /// Whether nginx loads the certificate (TLS routes can be served).
    certificate: bool,
}

/// nginx's route table as `NginxProxy::served` read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedTable {
    /// The routes, sorted by host.
    pub routes: Vec<Route>,
    /// The bytes of the table in use (its capacity is `NginxConfig::route_table_bytes`).
    pub bytes_in_use: usize,
}

/// One host's change: the route it had and the route it gets.
#[derive(Debug)]
struct Change {
    host: Hostname,
    before: Option<Route>,
    after: Option<Route>,
}

impl Change {
    fn op(&self) -> Op {
        Self::op_to(&self.host, &self.after)
    }

    fn undo_op(&self) -> Op {
        Self::op_to(&self.host, &self.before)
    }

    fn op_to(host: &Hostname, route: &Option<Route>) -> Op {
        match route {
            Some(route) => Op::Put(route.clone()),
            None => Op::Remove(host.clone()),
        }
    }
}

/// When kws's files are installed, whether nginx is reloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Install {
    /// Only if a file changed and nginx runs (`open`).
    IfChanged,
    /// Always, and nginx must run (`reload`, after a new certificate).
    Reload,
}

impl NginxProxy {
    /// Opens kws's folder: creates it if needed, (re)writes `http.conf`, `admin.conf` and the
    /// Lua code (reloading nginx if one of them changed and nginx runs), reads the journal back
    /// (cutting off a batch a crash left unfinished) and, if nginx runs, makes its table match
    /// the journal.
    pub async fn open(policy: RoutePolicy, config: NginxConfig) -> Result<Self, ProxyError> {
        config.check()?;
        tokio::fs::create_dir_all(&config.dir)
            .await
            .map_err(ProxyError::io("create", &config.dir))?;
        let lock = files::lock_folder(&config.lock_path())?;
        let admin_conf = config.admin_conf_path();
        let token = admin::token_at(&admin_conf).map_err(ProxyError::io("read", admin_conf))?;
        let routes = PersistedRoutes::open(&config.journal_path()).await?;
        let admin = Admin::new(&config, token);
        let state = State { routes, certificate: false };
        let proxy = Self { policy, config, admin, state: Mutex::new(state), _lock: lock };
        {
            let mut state = proxy.state.lock().await;
            state.certificate = proxy.install(Install::IfChanged).await?;
            if command::running(&proxy.config) {
                proxy.sync(state.routes.table()).await?;
            }
        }
        Ok(proxy)
    }

    /// The configuration this backend drives.
    pub fn config(&self) -> &NginxConfig {
        &self.config
    }

    /// Rewrites kws's files (a certificate that appeared is now loaded), checks the whole
    /// configuration, then reloads nginx gracefully (e.g. after a new certificate); on failure
    /// the previous files come back and nginx keeps serving. The route table survives.
    pub async fn reload(&self) -> Result<(), ProxyError> {
        let mut state = self.state.lock().await;
        state.certificate = self.install(Install::Reload).await?;
        Ok(())
    }

    /// What nginx's table holds now, read from nginx itself (to compare with `routes`, or to
    /// watch the table's room).
    pub async fn served(&self) -> Result<ServedTable, ProxyError> {
        let text = self.admin.table().await.map_err(unavailable)?;
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let number = |key: &str| -> usize {
            header
                .split(' ')
                .skip_while(|w| *w != key)
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let used = number("capacity").saturating_sub(number("free"));
        let mut routes = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            match Op::parse(line) {
                Ok(Op::Put(route)) => routes.push(route),
                _ => {
                    return Err(ProxyError::Unavailable {
                        output: format!(
                            "nginx's route table answered a line kws cannot read: {line:?}"
                        ),
                    });
                }
            }
        }
        routes.sort_by(|a, b| a.host().cmp(b.host()));
        Ok(ServedTable { routes, bytes_in_use: used })
    }

    /// Writes the files of kws's folder that changed and reloads nginx as `when` says; on
    /// failure puts the previous files back. Returns whether nginx loads the certificate.
    async fn install(&self, when: Install) -> Result<bool, ProxyError> {
        let rendered = render::files(&self.config, Some(self.policy.domain()), self.admin.token());
        let mut changes = Vec::new();
        for (path, text, private) in &rendered.files {
            let previous = files::read_if_exists(path).await?;
            if previous.as_deref() == Some(text.as_str()) {
                continue;
            }
            if let Err(e) = files::write_atomic(path, text, *private).await {
                files::undo_all(&changes).await;
                return Err(e);
            }
            changes.push(files::Change { path: path.clone(), previous, private: *private });
        }
        let reload = match when {
            Install::Reload => true,
            Install::IfChanged => !changes.is_empty() && command::running(&self.config),
        };
        if reload {
            if let Err(e) = self.check_whole_and_reload().await {
                files::undo_all(&changes).await;
                return Err(e);
            }
        }
        Ok(rendered.certificate)
    }

    async fn check_whole_and_reload(&self) -> Result<(), ProxyError> {
        if !command::running(&self.config) {
            return Err(ProxyError::Reload {
                output: format!(
                    "nginx is not running (no master in {})",
                    self.config.pid_file.display()
                ),
            });
        }
        if let Err(output) = command::test(&self.config, &self.config.main_config).await {
            return Err(ProxyError::Reload { output });
        }
        command::reload(&self.config).await.map_err(|output| ProxyError::Reload { output })
    }

    /// Makes nginx's table hold exactly `table`.
    async fn sync(&self, table: &BTreeMap<Hostname, Route>) -> Result<(), ProxyError> {
        let ops: Vec<Op> = table.values().cloned().map(Op::Put).collect();
        self.admin.apply(batch_text(&ops), true).await.map_err(|e| match e {
            AdminError::Refused(output) => ProxyError::InvalidConfig {
                field: "route_table_bytes",
                why: format!(
                    "nginx's route table cannot hold the {} routes of the journal: {output}",
                    ops.len()
                ),
            },
            other => unavailable(other),
        })
    }

    /// Persists `changes` as one batch, then applies them in nginx; on failure cuts the batch
    /// off the journal again (and, if nginx may have applied it, undoes it there).
    async fn commit(&self, state: &mut State, changes: Vec<Change>) -> Result<(), ProxyError> {
        let Some(first) = changes.first().map(|c| c.host.clone()) else { return Ok(()) };
        let ops: Vec<Op> = changes.iter().map(Change::op).collect();
        let batch = batch_text(&ops);
        let change = async {
            let Err(e) = self.admin.apply(batch, false).await else { return Ok(()) };
            if let AdminError::Unavailable { maybe_applied: true, .. } = e {
                let undo: Vec<Op> = changes.iter().rev().map(Change::undo_op).collect();
                if let Err(again) = self.admin.apply(batch_text(&undo), false).await {
                    tracing::error!(error = ?again, "cannot undo a batch nginx may have applied; `open` repairs it");
                }
            }
            Err(match e {
                AdminError::Refused(output) => {
                    ProxyError::Rejected { host: first, stage: CheckStage::RouteTable, output }
                }
                other => unavailable(other),
            })
        };
        state.routes.commit(ops, change).await
    }
}

fn unavailable(e: AdminError) -> ProxyError {
    match e {
        AdminError::Refused(output) | AdminError::Unavailable { output, .. } => {
            ProxyError::Unavailable { output }
        }
    }
}

#[async_trait]
impl ProxyWriter for NginxProxy {
    fn policy(&self) -> &RoutePolicy {
        &self.policy
    }

    async fn publish_all(&self, routes: Vec<Route>) -> Result<(), ProxyError> {
        let mut state = self.state.lock().await;
        let fresh = RouteTable::new(&self.policy, state.routes.table()).admit(routes)?;
        if !state.certificate {
            if let Some(route) = fresh.iter().find(|r| r.tls()) {
                return Err(ProxyError::CertificateMissing {
                    host: route.host().clone(),
                    chain: self.config.certificate.chain.clone(),
                });
            }
        }
        let changes = fresh
            .into_iter()
            .map(|route| Change { host: route.host().clone(), before: None, after: Some(route) })
            .collect();
        self.commit(&mut state, changes).await
    }

    async fn replace(&self, route: Route) -> Result<(), ProxyError> {
        let mut state = self.state.lock().await;
        self.policy.check(&route)?;
        let Some(before) = state.routes.table().get(route.host()).cloned() else {
            return Err(ProxyError::NotFound { host: route.host().clone() });
        };
        if before == route {
            return Ok(());
        }
        if route.tls() && !state.certificate {
            return Err(ProxyError::CertificateMissing {
                host: route.host().clone(),
                chain: self.config.certificate.chain.clone(),
            });
        }
        let change =
            Change { host: route.host().clone(), before: Some(before), after: Some(route) };
        self.commit(&mut state, vec![change]).await
    }

    async fn repair(&self) -> Result<Vec<Hostname>, ProxyError> {
        let state = self.state.lock().await;
        let served = self.served().await?;
        let want = state.routes.table();
        let have: BTreeMap<&Hostname, &Route> =
            served.routes.iter().map(|r| (r.host(), r)).collect();
        let mut drifted: Vec<Hostname> =
            want.iter().filter(|(h, r)| have.get(h) != Some(r)).map(|(h, _)| h.clone()).collect();
        drifted.extend(
            served.routes.iter().filter(|r| !want.contains_key(r.host())).map(|r| r.host().clone()),
        );
        if !drifted.is_empty() {
            tracing::warn!(hosts = ?drifted, "nginx's table drifted from the routes; repairing");
            self.sync(want).await?;
        }
        drifted.sort();
        Ok(drifted)
    }

    async fn unpublish(&self, host: &Hostname) -> Result<(), ProxyError> {
        let mut state = self.state.lock().await;
        let Some(before) = state.routes.table().get(host).cloned() else {
            return Err(ProxyError::NotFound { host: host.clone() });
        };
        let change = Change { host: host.clone(), before: Some(before), after: None };
        self.commit(&mut state, vec![change]).await
    }

    async fn routes(&self) -> Result<Vec<Route>, ProxyError> {
        Ok(self.state.lock().await.routes.table().values().cloned().collect())
    }
}
