//! The in-memory backend: instances as records that change state, with real address leases
//! from an [`IpAllocator`], and no process behind them.
//!
//! It keeps the [`Runtime`] contract for everything a caller's bookkeeping can observe (names,
//! states, addresses, owner networks, events, idempotency, `NotFound`), so programs that embed
//! kws can test their own logic and benchmarks can measure the layers above the engine. It runs
//! nothing: `logs` yields no lines, `stats` reports an idle instance, and `exec` fails with a
//! `Backend` error that says so.

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use chrono::Utc;
use futures::StreamExt;
use ipnet::Ipv4Net;
use kws_core::{DnsLabel, OwnerId};
use kws_ipam::{IpAllocator, LeaseOwner, PoolSpec};
use tokio::sync::broadcast;

use crate::{
    Error, ExecOutput, ExecRequest, ImageRef, InstanceChange, InstanceEvent, InstanceEventStream,
    InstanceInfo, InstanceKey, InstanceSpec, InstanceState, InstanceStats, LogOptions, LogStream,
    NetworkInfo, Purged, Redeploy, Resources, Runtime, VolumePolicy,
};

/// The IDE port an instance gets when its spec names none.
const IDE_PORT: u16 = 8080;

/// An in-memory [`Runtime`].
#[derive(Debug, Clone)]
pub struct MemoryRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    allocator: Arc<dyn IpAllocator>,
    image: ImageRef,
    /// The images "on the engine": the default one and those added.
    images: Mutex<Vec<ImageRef>>,
    range: Ipv4Net,
    prefix_len: u8,
    max: Resources,
    state: Mutex<State>,
    events: broadcast::Sender<InstanceEvent>,
    /// Serialises create and remove, so the address leases follow the records exactly.
    serial: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct State {
    instances: BTreeMap<InstanceKey, InstanceInfo>,
    networks: BTreeMap<OwnerId, Ipv4Net>,
    /// Workspaces kept by `remove(Keep)`, by key.
    volumes: HashMap<InstanceKey, String>,
}

impl MemoryRuntime {
    /// A runtime whose instances run `image` by default, with owner subnets of /24 carved from
    /// `10.213.0.0/16`, and addresses from `allocator`.
    pub fn new(allocator: Arc<dyn IpAllocator>, image: ImageRef) -> Self {
        let range = Ipv4Net::new(Ipv4Addr::new(10, 213, 0, 0), 16).unwrap_or_default();
        Self::with_range(allocator, image, range, 24)
    }

    /// A runtime with owner subnets of `/prefix_len` carved from `range`.
    pub fn with_range(
        allocator: Arc<dyn IpAllocator>,
        image: ImageRef,
        range: Ipv4Net,
        prefix_len: u8,
    ) -> Self {
        let (events, _) = broadcast::channel(1024);
        let max = Resources { memory_bytes: 64 << 30, cpus: 64.0, pids: 32768 };
        let inner = Inner {
            allocator,
            images: Mutex::new(vec![image.clone()]),
            image,
            range,
            prefix_len,
            max,
            state: Mutex::default(),
            events,
            serial: tokio::sync::Mutex::new(()),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Makes `image` available to specs, as if it had been loaded into an engine; a spec naming
    /// an image that was not added fails with `ImageNotFound`.
    pub fn add_image(&self, image: ImageRef) {
        let mut images =
            self.inner.images.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !images.contains(&image) {
            images.push(image);
        }
    }

    fn check_image(&self, spec: &InstanceSpec) -> Result<ImageRef, Error> {
        let image = spec.image.clone().unwrap_or_else(|| self.inner.image.clone());
        let images = self.inner.images.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match images.contains(&image) {
            true => Ok(image),
            false => Err(Error::ImageNotFound(image.as_str().to_owned())),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn emit(&self, key: &InstanceKey, change: InstanceChange) {
        let event = InstanceEvent { key: key.clone(), change, at: Utc::now() };
        // No subscriber is not an error.
        let _ = self.inner.events.send(event);
    }

    fn set_state(&self, key: &InstanceKey, state: InstanceState) -> Result<(), Error> {
        let changed = {
            let mut all = self.state();
            let info = all.instances.get_mut(key).ok_or_else(|| key.not_found())?;
            let changed = info.state != state;
            if changed && state == InstanceState::Running {
                info.started_at = Some(Utc::now());
            }
            info.state = state;
            changed
        };
        if changed {
            self.emit(key, InstanceChange::State(state));
        }
        Ok(())
    }

    fn get(&self, key: &InstanceKey) -> Result<InstanceInfo, Error> {
        self.state().instances.get(key).cloned().ok_or_else(|| key.not_found())
    }

    /// The owner's subnet and pool, carving and creating them on first use.
    async fn network(&self, owner: &OwnerId) -> Result<(Ipv4Net, DnsLabel), Error> {
        let subnet = {
            let mut state = self.state();
            match state.networks.get(owner) {
                Some(net) => *net,
                None => {
                    let taken: Vec<Ipv4Net> = state.networks.values().copied().collect();
                    let free = self
                        .inner
                        .range
                        .subnets(self.inner.prefix_len)
                        .map_err(|_| {
                            Error::invalid("prefix_len", self.inner.prefix_len, "≥ range")
                        })?
                        .find(|net| !taken.contains(net))
                        .ok_or_else(|| Error::NoSubnet {
                            owner: owner.clone(),
                            range: self.inner.range,
                            prefix_len: self.inner.prefix_len,
                        })?;
                    state.networks.insert(owner.clone(), free);
                    free
                }
            }
        };
        let pool = pool_name(&subnet)?;
        match self.inner.allocator.create_pool(PoolSpec::new(pool.clone(), subnet.into())).await {
            Ok(()) | Err(kws_ipam::Error::PoolExists(_)) => Ok((subnet, pool)),
            Err(e) => Err(e.into()),
        }
    }
}

fn pool_name(subnet: &Ipv4Net) -> Result<DnsLabel, Error> {
    let [a, b, c, d] = subnet.network().octets();
    Ok(DnsLabel::parse(&format!("mem-{a}-{b}-{c}-{d}-{}", subnet.prefix_len()))?)
}

fn lease_owner(key: &InstanceKey) -> Result<LeaseOwner, Error> {
    Ok(LeaseOwner::new(format!("instance/{}/{}", key.owner, key.name))?)
}

#[async_trait::async_trait]
impl Runtime for MemoryRuntime {
    async fn create(&self, spec: InstanceSpec) -> Result<InstanceInfo, Error> {
        spec.validate(&self.inner.max)?;
        let image = self.check_image(&spec)?;
        let key = InstanceKey::new(spec.owner.clone(), spec.name.clone());
        let _serial = self.inner.serial.lock().await;
        if self.state().instances.contains_key(&key) {
            return Err(Error::AlreadyExists { owner: key.owner, instance: key.name });
        }
        let (_, pool) = self.network(&key.owner).await?;
        let lease = self.inner.allocator.allocate(&pool, &lease_owner(&key)?).await?;
        let IpAddr::V4(address) = lease.addr else {
            let _ = self.inner.allocator.release(&pool, lease.addr).await;
            return Err(Error::invalid("owner pool", lease.addr, "an IPv4 pool"));
        };
        let volume = format!("kws.{}.{}.workspace", key.owner, key.name);
        let info = InstanceInfo {
            key: key.clone(),
            container_id: format!("mem-{}", kws_core::JobId::new()),
            image,
            state: InstanceState::Created,
            health: None,
            started_at: None,
            address,
            ide_port: spec.ide_port.unwrap_or(IDE_PORT),
            app_ports: spec.app_ports.clone(),
            volume: volume.clone(),
            spec,
        };
        {
            let mut state = self.state();
            state.volumes.insert(key.clone(), volume);
            state.instances.insert(key.clone(), info.clone());
        }
        self.emit(&key, InstanceChange::State(InstanceState::Created));
        Ok(info)
    }

    async fn start(&self, key: &InstanceKey) -> Result<(), Error> {
        self.set_state(key, InstanceState::Running)
    }

    async fn stop(&self, key: &InstanceKey, _timeout: Option<Duration>) -> Result<(), Error> {
        match self.get(key)?.state {
            InstanceState::Running | InstanceState::Paused | InstanceState::Restarting => {
                self.set_state(key, InstanceState::Exited { code: 0 })
            }
            _ => Ok(()),
        }
    }

    async fn restart(&self, key: &InstanceKey) -> Result<(), Error> {
        self.stop(key, None).await?;
        self.start(key).await
    }

    async fn redeploy(&self, key: &InstanceKey, change: Redeploy) -> Result<InstanceInfo, Error> {
        let old = self.get(key)?;
        let spec = change.apply(old.spec.clone());
        spec.validate(&self.inner.max)?;
        let image = self.check_image(&spec)?;
        {
            let mut state = self.state();
            let info = state.instances.get_mut(key).ok_or_else(|| key.not_found())?;
            info.image = image;
            info.container_id = format!("mem-{}", kws_core::JobId::new());
            info.spec = spec;
        }
        self.set_state(key, InstanceState::Running)?;
        self.get(key)
    }

    async fn remove(&self, key: &InstanceKey, volume: VolumePolicy) -> Result<(), Error> {
        self.get(key)?;
        self.purge(key, volume).await.map(|_| ())
    }

    async fn inspect(&self, key: &InstanceKey) -> Result<InstanceInfo, Error> {
        self.get(key)
    }

    async fn list(&self, owner: &OwnerId) -> Result<Vec<InstanceInfo>, Error> {
        let state = self.state();
        Ok(state.instances.values().filter(|i| &i.key.owner == owner).cloned().collect())
    }

    async fn stats(&self, key: &InstanceKey) -> Result<InstanceStats, Error> {
        let info = self.get(key)?;
        if info.state != InstanceState::Running {
            return Err(Error::NotRunning { owner: key.owner.clone(), instance: key.name.clone() });
        }
        let limit = info.spec.resources.map_or(0, |r| u64::try_from(r.memory_bytes).unwrap_or(0));
        Ok(InstanceStats {
            cpu_percent: 0.0,
            memory_bytes: 0,
            memory_limit_bytes: limit,
            rx_bytes: 0,
            tx_bytes: 0,
            pids: 1,
        })
    }

    async fn logs(&self, key: &InstanceKey, _options: LogOptions) -> Result<LogStream, Error> {
        self.get(key)?;
        Ok(futures::stream::empty().boxed())
    }

    async fn exec(&self, key: &InstanceKey, _request: ExecRequest) -> Result<ExecOutput, Error> {
        if self.get(key)?.state != InstanceState::Running {
            return Err(Error::NotRunning { owner: key.owner.clone(), instance: key.name.clone() });
        }
        Err(Error::Backend {
            backend: "memory",
            source: "the in-memory runtime runs no processes, so it cannot exec".into(),
        })
    }

    async fn list_all(&self) -> Result<Vec<InstanceInfo>, Error> {
        Ok(self.state().instances.values().cloned().collect())
    }

    async fn purge(&self, key: &InstanceKey, volume: VolumePolicy) -> Result<Purged, Error> {
        let _serial = self.inner.serial.lock().await;
        let mut purged = Purged::default();
        let (removed, net) = {
            let mut state = self.state();
            let removed = state.instances.remove(key).is_some();
            if volume == VolumePolicy::Delete {
                purged.volume = state.volumes.remove(key).is_some();
            }
            (removed, state.networks.get(&key.owner).copied())
        };
        purged.containers = usize::from(removed);
        if let Some(subnet) = net {
            let pool = pool_name(&subnet)?;
            if let Some(lease) =
                self.inner.allocator.lookup_owner(&pool, &lease_owner(key)?).await?
            {
                match self.inner.allocator.release(&pool, lease.addr).await {
                    Ok(_) | Err(kws_ipam::Error::NotAllocated { .. }) => purged.leases += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if removed {
            self.emit(key, InstanceChange::Removed);
        }
        Ok(purged)
    }

    async fn networks(&self) -> Result<Vec<NetworkInfo>, Error> {
        let state = self.state();
        let mut nets: Vec<NetworkInfo> = state
            .networks
            .iter()
            .map(|(owner, subnet)| NetworkInfo {
                owner: owner.clone(),
                subnet: *subnet,
                bridge: None,
            })
            .collect();
        nets.sort_by_key(|n| n.subnet);
        Ok(nets)
    }

    async fn remove_network(&self, owner: &OwnerId) -> Result<bool, Error> {
        let mut state = self.state();
        if state.instances.keys().any(|k| &k.owner == owner) {
            return Err(Error::InUse(format!("network of {owner}")));
        }
        Ok(state.networks.remove(owner).is_some())
    }

    async fn watch(&self) -> Result<InstanceEventStream, Error> {
        let events = tokio_stream::wrappers::BroadcastStream::new(self.inner.events.subscribe());
        Ok(events
            .filter_map(|event| async move {
                // A lagging subscriber missed events: say so, so it makes a full pass.
                Some(event.map_err(|e| Error::Backend { backend: "memory", source: e.into() }))
            })
            .boxed())
    }
}
