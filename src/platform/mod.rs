//! The Platform: the capability crates composed into user flows, with a store of record,
//! operations that survive crashes, reconcile, and a tenant-tagged event stream.
//!
//! Every front end (the daemon, its API and dashboard, a program that embeds kws) goes through
//! [`Platform`]. Each flow runs as a recorded operation ([`store::Operation`]): a failure
//! undoes its finished steps in reverse order, a crash in the middle is finished or undone by
//! the next process's reaper ([`Platform::reap`]), and [`Platform::reconcile`] makes the
//! engines (interface peers, firewall, proxy routes, certificates, containers) match the
//! stores, which are the truth.
//!
//! ```
//! # tokio_test_block_on(async {
//! use kws::platform::{Platform, Scope, LaunchInstance};
//! use kws::core::OwnerId;
//!
//! let platform = Platform::embedded().await?;
//! let alice = OwnerId::parse("alice")?;
//! platform.create_tenant(&Scope::Operator, alice.clone(), "Alice", None).await?;
//! let instance = platform
//!     .launch_instance(&Scope::Operator, &alice, LaunchInstance::named("web")?, None)
//!     .await?;
//! assert_eq!(instance.meta.name.as_str(), "web");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

mod background;
pub mod config;
mod desired;
mod error;
pub mod events;
mod flows;
pub mod model;
mod ops;
mod parts;
pub mod reconcile;
mod scope;
pub mod store;

pub use background::Background;
pub use error::{Error, ErrorKind};
pub use events::{EventBody, EventBus, PlatformEvent, StreamGap, Subscription};
pub use flows::{
    AddDevice, CodeRunner, DatabaseCreated, DeviceAdded, LaunchInstance, PublishApp, Redeploy,
    SubmitJob,
};
pub use ops::{Fault, FaultPoint};
pub use parts::{Backend, IdeSettings, PlatformParts, PlatformSettings};
pub use reconcile::ReconcileReport;
pub use scope::{Role, Scope};

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
};

use kws_db::DatabaseProvisioner;
use kws_hostnet::HostNetwork;
use kws_ipam::IpAllocator;
use kws_proxy::ProxyWriter;
use kws_runtime::Runtime;
use kws_wg::VpnService;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::platform::{ops::FaultPlan, store::PlatformStore};

/// The capability crates composed into user flows. Clones share one Platform.
#[derive(Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

struct Inner {
    settings: PlatformSettings,
    store: Arc<dyn PlatformStore>,
    allocator: Arc<dyn IpAllocator>,
    vpn: VpnService,
    hostnet: Arc<dyn HostNetwork>,
    runtime: Backend<Arc<dyn Runtime>>,
    proxy: Arc<dyn ProxyWriter>,
    #[cfg(feature = "acme")]
    certs: Option<Arc<kws_proxy::tls::CertIssuer>>,
    databases: Backend<Arc<dyn DatabaseProvisioner>>,
    exec: Backend<Arc<dyn CodeRunner>>,
    events: EventBus,
    /// This process's name on the operations it runs.
    holder: String,
    /// Cancel tokens of the operations running in this process.
    runs: Mutex<HashMap<Uuid, CancellationToken>>,
    faults: FaultPlan,
    /// One firewall change at a time: each computes the whole desired state from the store.
    firewall: tokio::sync::Mutex<()>,
    /// The last reconcile's report.
    last_reconcile: Mutex<Option<ReconcileReport>>,
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Platform")
            .field("domain", &self.inner.settings.domain)
            .field("store", &self.inner.store)
            .field("runtime", &self.inner.runtime)
            .field("holder", &self.inner.holder)
            .finish_non_exhaustive()
    }
}

impl Platform {
    /// Composes the parts. Nothing is changed anywhere yet: call [`Platform::start`] (or
    /// [`Platform::reap`] and [`Platform::reconcile`] yourself) before serving.
    pub fn new(parts: PlatformParts) -> Self {
        let holder = format!(
            "{}:{}:{}",
            hostname(),
            std::process::id(),
            &Uuid::now_v7().simple().to_string()[20..]
        );
        let events = EventBus::new(parts.settings.event_window);
        let inner = Inner {
            settings: parts.settings,
            store: parts.store,
            allocator: parts.allocator,
            vpn: parts.vpn,
            hostnet: parts.hostnet,
            runtime: parts.runtime,
            proxy: parts.proxy,
            #[cfg(feature = "acme")]
            certs: parts.certs,
            databases: parts.databases,
            exec: parts.exec,
            events,
            holder,
            runs: Mutex::default(),
            faults: FaultPlan::default(),
            firewall: tokio::sync::Mutex::new(()),
            last_reconcile: Mutex::new(None),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Every in-memory backend: the memory store, allocator, peer store, WireGuard device,
    /// runtime and proxy, and the `plan` host network (which renders what it would do and
    /// changes nothing). Databases and code execution need their services and are
    /// `Unavailable`. Nothing outside this process is touched.
    pub async fn embedded() -> Result<Self, Error> {
        let platform = Self::new(PlatformParts::embedded().await?);
        platform.start().await?;
        Ok(platform)
    }

    /// Brings the engines in line before serving: the runtime's recovery (leases of running
    /// instances, interrupted redeploys), the reaper, then one reconcile.
    pub async fn start(&self) -> Result<ReconcileReport, Error> {
        if let Ok(runtime) = self.runtime() {
            runtime.recover().await.map_err(|e| Error::backend("runtime", e))?;
        }
        self.reap().await?;
        self.reconcile().await
    }

    /// The settings.
    pub fn settings(&self) -> &PlatformSettings {
        &self.inner.settings
    }

    /// The store of record.
    pub fn store(&self) -> &Arc<dyn PlatformStore> {
        &self.inner.store
    }

    /// The address allocator (shared by the VPN and the instance networks).
    pub fn allocator(&self) -> &Arc<dyn IpAllocator> {
        &self.inner.allocator
    }

    /// The VPN service (peer store and interface).
    pub fn vpn(&self) -> &VpnService {
        &self.inner.vpn
    }

    /// The host network (firewall, bridges).
    pub fn hostnet(&self) -> &Arc<dyn HostNetwork> {
        &self.inner.hostnet
    }

    /// The runtime, or `Unavailable` naming what is missing.
    pub fn runtime(&self) -> Result<&Arc<dyn Runtime>, Error> {
        self.inner.runtime.get("instances")
    }

    /// The proxy.
    pub fn proxy(&self) -> &Arc<dyn ProxyWriter> {
        &self.inner.proxy
    }

    /// The certificate issuer, when one is configured.
    #[cfg(feature = "acme")]
    pub fn certs(&self) -> Option<&Arc<kws_proxy::tls::CertIssuer>> {
        self.inner.certs.as_ref()
    }

    /// The database provisioner, or `Unavailable`.
    pub fn databases(&self) -> Result<&Arc<dyn DatabaseProvisioner>, Error> {
        self.inner.databases.get("databases")
    }

    /// The code-execution engine, or `Unavailable`.
    pub fn exec(&self) -> Result<&Arc<dyn CodeRunner>, Error> {
        self.inner.exec.get("code execution")
    }

    /// The event stream.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// This process's name on the operations it runs.
    pub fn holder(&self) -> &str {
        &self.inner.holder
    }

    /// The last reconcile's report, if one ran.
    pub fn last_reconcile(&self) -> Option<ReconcileReport> {
        self.inner.last_reconcile.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Sets (or with `None` clears) a fault injected after a step of a flow.
    #[cfg(feature = "testkit")]
    pub fn inject_fault(&self, point: FaultPoint, fault: Option<Fault>) {
        self.inner.faults.set(point, fault);
    }

    pub(crate) fn faults(&self) -> &FaultPlan {
        &self.inner.faults
    }

    pub(crate) fn firewall_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.inner.firewall
    }

    pub(crate) fn set_last_reconcile(&self, report: ReconcileReport) {
        *self.inner.last_reconcile.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(report);
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, CancellationToken>> {
        self.inner.runs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn register_run(&self, id: Uuid) -> CancellationToken {
        self.runs().entry(id).or_default().clone()
    }

    pub(crate) fn forget_run(&self, id: Uuid) {
        self.runs().remove(&id);
    }

    /// Asks a running operation to stop. It stops at once when it runs in this process (the
    /// step under way is dropped), at its next step when it runs in another; either way what
    /// it did is undone. Flows that remove things finish instead. Returns the operation as it
    /// ended (or as it stands, when another process runs it).
    pub async fn cancel_operation(
        &self,
        scope: &Scope,
        id: Uuid,
    ) -> Result<store::Operation, Error> {
        let op = self.store().request_cancel(scope, id).await?;
        if let Some(token) = self.runs().get(&id) {
            token.cancel();
        }
        if op.holder.as_deref() == Some(self.holder()) {
            return ops::wait_final(self, scope, op).await;
        }
        Ok(op)
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kws".to_owned())
}
