//! Create, start, stop, restart, remove, list and adopt.

use std::{collections::HashMap, net::Ipv4Addr};

use bollard::{
    models::VolumeCreateOptions,
    query_parameters::{
        CreateContainerOptions, ListContainersOptions, RemoveContainerOptions, RemoveVolumeOptions,
        RestartContainerOptions, StartContainerOptions, StopContainerOptions,
    },
};
use kws_core::OwnerId;

use super::{
    DockerRuntime,
    container::Placement,
    names::{
        LABEL_INSTANCE, LABEL_MANAGED, LABEL_OWNER, container_name, engine, engine_context,
        is_managed, lease_owner, next_lease_owner, next_name, owner_labels, status, volume_name,
    },
    network::OwnerNetwork,
};
use crate::{Error, InstanceInfo, InstanceKey, InstanceSpec, VolumePolicy};

/// What a failing `create` has made so far, to take back in reverse order.
#[derive(Debug, Default)]
struct Made {
    network: Option<String>,
    lease: Option<Ipv4Addr>,
    volume: Option<String>,
}

impl DockerRuntime {
    pub(super) async fn create_instance(&self, spec: InstanceSpec) -> Result<InstanceInfo, Error> {
        let key = InstanceKey::new(spec.owner.clone(), spec.name.clone());
        let name = container_name(&key);
        let lock = self.lock_for(&name);
        let _guard = lock.lock().await;
        let image_user = self.check_spec(&spec).await?;
        match self.find_container(&key, &name).await {
            Ok(_) => {
                return Err(Error::AlreadyExists { owner: key.owner, instance: key.name });
            }
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let (net, created) = self.ensure_network(&spec.owner).await?;
        let mut made = Made { network: created.then(|| net.name.clone()), ..Made::default() };
        match self.create_parts(&spec, &key, image_user, &net, &mut made).await {
            Ok(info) => {
                tracing::info!(%key, address = %info.address, image = %info.image, "created");
                Ok(info)
            }
            Err(e) => {
                self.take_back(&key, &net, made).await;
                Err(e)
            }
        }
    }

    async fn create_parts(
        &self,
        spec: &InstanceSpec,
        key: &InstanceKey,
        image_user: Option<String>,
        net: &OwnerNetwork,
        made: &mut Made,
    ) -> Result<InstanceInfo, Error> {
        let address = self.lease(&net.pool, &lease_owner(key)?).await?;
        made.lease = Some(address);
        let volume = volume_name(key);
        match self.docker.inspect_volume(&volume).await {
            Ok(v) if is_managed(Some(&v.labels), &key.owner) => {}
            Ok(_) => return Err(Error::Unmanaged(format!("volume {volume}"))),
            Err(e) if status(&e) == Some(404) => {
                let mut labels = owner_labels(&key.owner, &self.config.extra_labels);
                labels.insert(LABEL_INSTANCE.to_owned(), key.name.to_string());
                let request = VolumeCreateOptions {
                    name: Some(volume.clone()),
                    labels: Some(labels),
                    ..Default::default()
                };
                self.docker.create_volume(request).await.map_err(engine)?;
                made.volume = Some(volume);
            }
            Err(e) => return Err(engine(e)),
        }
        let placement = Placement { network: net, endpoint: address, address };
        let body = self.container_body(spec, image_user, &placement)?;
        let options =
            CreateContainerOptions { name: Some(container_name(key)), ..Default::default() };
        match self.docker.create_container(Some(options), body).await {
            Ok(_) => {}
            Err(e) if status(&e) == Some(409) => {
                return Err(Error::Unmanaged(format!("container {}", container_name(key))));
            }
            Err(e) => return Err(engine_context(format!("create {}", container_name(key)), e)),
        }
        let found = self.find_container(key, &container_name(key)).await?;
        self.info_of(found)
    }

    /// Undoes a failed `create`, newest first; keeps going after an error and logs it (the
    /// caller reports the error that made it undo).
    async fn take_back(&self, key: &InstanceKey, net: &OwnerNetwork, made: Made) {
        if let Some(volume) = made.volume {
            if let Err(e) = self.docker.remove_volume(&volume, None::<RemoveVolumeOptions>).await {
                tracing::warn!(%key, %volume, error = %e, "undoing create: volume not removed");
            }
        }
        if let Some(addr) = made.lease {
            let released = match lease_owner(key) {
                Ok(holder) => self.release(&net.pool, addr, &holder).await,
                Err(e) => Err(e),
            };
            if let Err(e) = released {
                tracing::warn!(%key, %addr, error = %e, "undoing create: address not released");
            }
        }
        if let Some(network) = made.network {
            if let Err(e) = self.docker.remove_network(&network).await {
                tracing::warn!(%key, %network, error = %e, "undoing create: network not removed");
            }
        }
    }

    pub(super) async fn start_instance(&self, key: &InstanceKey) -> Result<(), Error> {
        let name = container_name(key);
        let found = self.find_container(key, &name).await?;
        if found.state.and_then(|s| s.running) == Some(true) {
            return Ok(());
        }
        match self.docker.start_container(&name, None::<StartContainerOptions>).await {
            Ok(()) => Ok(()),
            Err(e) if status(&e) == Some(304) => Ok(()),
            Err(e) => Err(engine_context(format!("start {name}"), e)),
        }
    }

    pub(super) async fn stop_instance(
        &self,
        key: &InstanceKey,
        timeout: Option<std::time::Duration>,
    ) -> Result<(), Error> {
        let name = container_name(key);
        self.find_container(key, &name).await?;
        self.stop_container(&name, timeout).await
    }

    pub(super) async fn stop_container(
        &self,
        name: &str,
        timeout: Option<std::time::Duration>,
    ) -> Result<(), Error> {
        let options = StopContainerOptions { t: Some(self.stop_seconds(timeout)), signal: None };
        match self.docker.stop_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if matches!(status(&e), Some(304 | 404)) => Ok(()),
            Err(e) => Err(engine_context(format!("stop {name}"), e)),
        }
    }

    pub(super) async fn restart_instance(&self, key: &InstanceKey) -> Result<(), Error> {
        let name = container_name(key);
        self.find_container(key, &name).await?;
        let options = RestartContainerOptions { t: Some(self.stop_seconds(None)), signal: None };
        self.docker
            .restart_container(&name, Some(options))
            .await
            .map_err(|e| engine_context(format!("restart {name}"), e))
    }

    pub(super) async fn remove_instance(
        &self,
        key: &InstanceKey,
        volume: VolumePolicy,
    ) -> Result<(), Error> {
        let name = container_name(key);
        let lock = self.lock_for(&name);
        let _guard = lock.lock().await;
        let found = self.find_container(key, &name).await?;
        let info = self.info_of(found)?;
        self.remove_container(&name).await?;
        let net = self.owner_network(&key.owner).await?;
        // A new container an interrupted redeploy left behind goes too.
        if let Ok(next) = self.find_container(key, &next_name(key)).await {
            self.remove_container(&next_name(key)).await?;
            let next_addr = self.endpoint_address(&next, net.as_ref());
            if let (Some(net), Some(addr)) = (&net, next_addr) {
                self.release(&net.pool, addr, &next_lease_owner(key)?).await?;
            }
        }
        if let Some(net) = &net {
            self.release(&net.pool, info.address, &lease_owner(key)?).await?;
        }
        tracing::info!(%key, address = %info.address, ?volume, "removed");
        if volume == VolumePolicy::Delete {
            let options = RemoveVolumeOptions { force: true };
            match self.docker.remove_volume(&info.volume, Some(options)).await {
                Ok(()) => {}
                Err(e) if status(&e) == Some(404) => {}
                Err(e) => return Err(engine_context(format!("remove volume {}", info.volume), e)),
            }
        }
        Ok(())
    }

    pub(super) async fn remove_container(&self, name: &str) -> Result<(), Error> {
        let options = RemoveContainerOptions { force: true, v: false, link: false };
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) => Err(engine_context(format!("remove {name}"), e)),
        }
    }

    /// Instances of `owner` (of every owner when `None`), sorted by owner and name.
    pub(super) async fn list_instances(
        &self,
        owner: Option<&OwnerId>,
    ) -> Result<Vec<InstanceInfo>, Error> {
        let mut labels = vec![format!("{LABEL_MANAGED}=true")];
        if let Some(owner) = owner {
            labels.push(format!("{LABEL_OWNER}={owner}"));
        }
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_owned(), labels)])),
            ..Default::default()
        };
        let summaries = self.docker.list_containers(Some(options)).await.map_err(engine)?;
        let mut instances = Vec::new();
        for summary in summaries {
            let Some(labels) = summary.labels.as_ref() else { continue };
            let (Some(owner), Some(name)) = (labels.get(LABEL_OWNER), labels.get(LABEL_INSTANCE))
            else {
                continue;
            };
            let (Ok(owner), Ok(name)) = (OwnerId::parse(owner), name.parse()) else { continue };
            let key = InstanceKey::new(owner, name);
            // Only the container under the instance's own name is the instance.
            match self.find_container(&key, &container_name(&key)).await {
                Ok(found) if found.id == summary.id => instances.push(self.info_of(found)?),
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        instances.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(instances)
    }

    /// Rebuilds what this runtime knows from the engine after a restart: every managed instance
    /// of every owner, with its address lease asserted in the allocator (so an allocator that lost
    /// its state does not hand a running instance's address out again), and redeploys a crash
    /// interrupted finished or undone. Containers without kws's labels are not looked at. Run it
    /// at start-up, while no other runtime process is redeploying on the same engine (it would
    /// take that redeploy's new container for a stray).
    pub async fn adopt(&self) -> Result<Vec<InstanceInfo>, Error> {
        self.recover_redeploys().await?;
        let instances = self.list_instances(None).await?;
        for info in &instances {
            let Some(net) = self.owner_network(&info.key.owner).await? else { continue };
            self.ensure_pool(&net).await?;
            let holder = lease_owner(&info.key)?;
            self.allocator.allocate_specific(&net.pool, info.address.into(), &holder).await?;
        }
        Ok(instances)
    }
}
