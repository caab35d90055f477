//! The Docker backend (feature `docker`): instances as hardened containers on per-owner bridge
//! networks, with addresses from an `IpAllocator` and workspaces on named volumes.
//!
//! Engine objects: network `kws.<owner>`, container `kws.<owner>.<instance>`, volume
//! `kws.<owner>.<instance>.workspace`, each labelled `kws.managed=true` and `kws.owner`
//! (containers and volumes also `kws.instance`), plus the configured extra labels. An owner
//! network's bridge interface is `kwsb<subnet in hex>` (`OwnerNetwork::bridge`).
//!
//! Isolation between owners: the engine's inter-network rules drop traffic between bridges, but
//! the engine deletes and re-inserts its `FORWARD` jump to them whenever any network is created,
//! and cross-network connections were seen to succeed in that window (Docker 20.10, measured
//! with 40 parallel probes during network churn). A deployment therefore also drops traffic
//! between owner bridges in its own firewall table, where the engine's churn cannot reach:
//! kws-hostnet's `isolated_bridges`, fed with the bridges of
//! [`DockerRuntime::owner_networks`] and re-applied after `create` made a new owner network and
//! before `start` puts anything on it. The root test `tests/owner_isolation.rs` proves it on an
//! engine running in a network namespace of its own, with Docker's chains flushed and networks
//! churning.

mod config;
mod container;
mod fleet;
mod lifecycle;
mod names;
mod network;
mod observe;
mod redeploy;

pub use config::{Capability, DockerConfig, IdeConfig};
pub use names::{LABEL_INSTANCE, LABEL_MANAGED, LABEL_OWNER};
pub use network::OwnerNetwork;

use std::{
    collections::HashMap,
    fmt,
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, Mutex},
    time::Duration,
};

use bollard::Docker;
use kws_core::{DnsLabel, OwnerId};
use kws_ipam::{IpAllocator, LeaseOwner};

use crate::{
    Error, ExecOutput, ExecRequest, InstanceEventStream, InstanceInfo, InstanceKey, InstanceSpec,
    InstanceStats, LogOptions, LogStream, NetworkInfo, Purged, Redeploy, Runtime, VolumePolicy,
};
use names::engine;

/// Runs instances on a Docker engine.
pub struct DockerRuntime {
    docker: Docker,
    allocator: Arc<dyn IpAllocator>,
    config: DockerConfig,
    /// One lock per instance and per owner network, so this process never races itself.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerRuntime")
            .field("allocator", &self.allocator)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl DockerRuntime {
    /// Connects to the engine at `DOCKER_HOST` (or the default socket) and agrees on an API
    /// version with it.
    pub async fn connect(
        allocator: Arc<dyn IpAllocator>,
        config: DockerConfig,
    ) -> Result<Self, Error> {
        let docker = Docker::connect_with_defaults().map_err(engine)?;
        Self::with_client(docker, allocator, config).await
    }

    /// Uses `docker`, after agreeing on an API version with the engine.
    pub async fn with_client(
        docker: Docker,
        allocator: Arc<dyn IpAllocator>,
        config: DockerConfig,
    ) -> Result<Self, Error> {
        config.validate()?;
        let docker = docker.negotiate_version().await.map_err(engine)?;
        Ok(Self { docker, allocator, config, locks: Mutex::new(HashMap::new()) })
    }

    /// The engine client (version negotiated).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// The configuration.
    pub fn config(&self) -> &DockerConfig {
        &self.config
    }

    fn lock_for(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(name.to_owned()).or_default().clone()
    }

    fn stop_seconds(&self, timeout: Option<Duration>) -> i32 {
        let t = timeout.unwrap_or(self.config.stop_timeout);
        i32::try_from(t.as_secs() + u64::from(t.subsec_nanos() > 0)).unwrap_or(i32::MAX)
    }

    /// Takes an address of `pool` for `holder`.
    async fn lease(&self, pool: &DnsLabel, holder: &LeaseOwner) -> Result<Ipv4Addr, Error> {
        let lease = self.allocator.allocate(pool, holder).await?;
        match lease.addr {
            IpAddr::V4(addr) => Ok(addr),
            IpAddr::V6(addr) => {
                let _ = self.allocator.release(pool, lease.addr).await;
                Err(Error::invalid("owner pool", addr, "an IPv4 pool"))
            }
        }
    }

    /// Gives `addr` back when `holder` holds it (and only then).
    async fn release(
        &self,
        pool: &DnsLabel,
        addr: Ipv4Addr,
        holder: &LeaseOwner,
    ) -> Result<(), Error> {
        match self.allocator.lookup(pool, addr.into()).await {
            Ok(Some(lease)) if &lease.owner == holder => {
                match self.allocator.release(pool, addr.into()).await {
                    Ok(_) | Err(kws_ipam::Error::NotAllocated { .. }) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            Ok(_) | Err(kws_ipam::Error::PoolNotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait::async_trait]
impl Runtime for DockerRuntime {
    async fn create(&self, spec: InstanceSpec) -> Result<InstanceInfo, Error> {
        self.create_instance(spec).await
    }

    async fn start(&self, key: &InstanceKey) -> Result<(), Error> {
        self.start_instance(key).await
    }

    async fn stop(&self, key: &InstanceKey, timeout: Option<Duration>) -> Result<(), Error> {
        self.stop_instance(key, timeout).await
    }

    async fn restart(&self, key: &InstanceKey) -> Result<(), Error> {
        self.restart_instance(key).await
    }

    async fn redeploy(&self, key: &InstanceKey, change: Redeploy) -> Result<InstanceInfo, Error> {
        self.redeploy_instance(key, change).await
    }

    async fn remove(&self, key: &InstanceKey, volume: VolumePolicy) -> Result<(), Error> {
        self.remove_instance(key, volume).await
    }

    async fn inspect(&self, key: &InstanceKey) -> Result<InstanceInfo, Error> {
        let found = self.find_container(key, &names::container_name(key)).await?;
        self.info_of(found)
    }

    async fn list(&self, owner: &OwnerId) -> Result<Vec<InstanceInfo>, Error> {
        self.list_instances(Some(owner)).await
    }

    async fn stats(&self, key: &InstanceKey) -> Result<InstanceStats, Error> {
        self.instance_stats(key).await
    }

    async fn logs(&self, key: &InstanceKey, options: LogOptions) -> Result<LogStream, Error> {
        self.instance_logs(key, options).await
    }

    async fn exec(&self, key: &InstanceKey, request: ExecRequest) -> Result<ExecOutput, Error> {
        self.instance_exec(key, request).await
    }

    async fn list_all(&self) -> Result<Vec<InstanceInfo>, Error> {
        self.list_instances(None).await
    }

    async fn purge(&self, key: &InstanceKey, volume: VolumePolicy) -> Result<Purged, Error> {
        self.purge_instance(key, volume).await
    }

    async fn networks(&self) -> Result<Vec<NetworkInfo>, Error> {
        self.network_infos().await
    }

    async fn remove_network(&self, owner: &OwnerId) -> Result<bool, Error> {
        self.remove_network_of(owner).await
    }

    async fn watch(&self) -> Result<InstanceEventStream, Error> {
        self.watch_instances().await
    }

    async fn recover(&self) -> Result<Vec<InstanceInfo>, Error> {
        self.adopt().await
    }
}
