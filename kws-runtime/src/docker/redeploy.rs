//! Redeploy: a new container beside the old one, then a switch of the address.
//!
//! Two containers cannot hold one address at once, so the new container starts on a temporary
//! address of the owner's pool. Only once it has kept running for the settle time is the old
//! one stopped and removed; the new one then moves to the instance's address and takes the
//! instance's container name. Until that point a failure removes the new container and its
//! temporary lease and leaves the old one as it was.

use bollard::{
    models::{
        ContainerInspectResponse, EndpointIpamConfig, EndpointSettings, HealthStatusEnum,
        NetworkConnectRequest, NetworkDisconnectRequest,
    },
    query_parameters::{
        CreateContainerOptions, ListContainersOptions, RenameContainerOptions,
        StartContainerOptions,
    },
};
use futures::StreamExt;
use std::{collections::HashMap, net::Ipv4Addr};

use super::{
    DockerRuntime,
    container::Placement,
    names::{
        LABEL_ADDRESS, LABEL_INSTANCE, LABEL_MANAGED, LABEL_OWNER, container_name, engine,
        engine_context, next_lease_owner, next_name, parse_address,
    },
    network::OwnerNetwork,
};
use crate::{Error, InstanceInfo, InstanceKey, InstanceSpec, LogOptions, Redeploy, Runtime};

impl DockerRuntime {
    pub(super) async fn redeploy_instance(
        &self,
        key: &InstanceKey,
        change: Redeploy,
    ) -> Result<InstanceInfo, Error> {
        let name = container_name(key);
        let lock = self.lock_for(&name);
        let _guard = lock.lock().await;
        let old = self.info_of(self.find_container(key, &name).await?)?;
        let spec = change.apply(old.spec.clone());
        let image_user = self.check_spec(&spec).await?;
        let (net, _) = self.ensure_network(&key.owner).await?;
        self.discard_next(key, &net).await?;
        let holder = next_lease_owner(key)?;
        let temporary = self.lease(&net.pool, &holder).await?;
        let placement = Placement { network: &net, endpoint: temporary, address: old.address };
        if let Err(e) = self.start_next(key, &spec, image_user, &placement).await {
            tracing::warn!(%key, error = %e, "redeploy: the new container failed; the old one stays");
            if let Err(undo) = self.remove_container(&next_name(key)).await {
                tracing::warn!(%key, error = %undo, "redeploy: new container not removed");
            }
            if let Err(undo) = self.release(&net.pool, temporary, &holder).await {
                tracing::warn!(%key, error = %undo, "redeploy: temporary address not released");
            }
            return Err(e);
        }
        self.stop_container(&name, None).await?;
        self.remove_container(&name).await?;
        self.switch_next(key, &net, old.address).await?;
        self.release(&net.pool, temporary, &holder).await?;
        tracing::info!(%key, address = %old.address, "redeployed");
        self.inspect(key).await
    }

    /// Creates and starts the new container, and checks that it keeps running.
    async fn start_next(
        &self,
        key: &InstanceKey,
        spec: &InstanceSpec,
        image_user: Option<String>,
        placement: &Placement<'_>,
    ) -> Result<(), Error> {
        let next = next_name(key);
        let failed = |reason: String| Error::StartFailed {
            owner: key.owner.clone(),
            instance: key.name.clone(),
            reason,
        };
        let body = self.container_body(spec, image_user, placement)?;
        let options = CreateContainerOptions { name: Some(next.clone()), ..Default::default() };
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| engine_context(format!("create {next}"), e))?;
        if let Err(e) = self.docker.start_container(&next, None::<StartContainerOptions>).await {
            return Err(failed(e.to_string()));
        }
        tokio::time::sleep(self.config.redeploy_settle).await;
        // With a health check, wait for its verdict (bounded by what the check itself allows).
        let verdict_by = spec
            .health_check
            .as_ref()
            .map(|c| tokio::time::Instant::now() + (c.interval + c.timeout) * (c.retries + 1));
        let found = loop {
            let found = self.find_container(key, &next).await?;
            let state = found.state.as_ref();
            let running = state.and_then(|s| s.running) == Some(true)
                && found.restart_count.unwrap_or(0) == 0;
            let health = state.and_then(|s| s.health.as_ref()).and_then(|h| h.status);
            match (running, health, verdict_by) {
                (true, None | Some(HealthStatusEnum::HEALTHY | HealthStatusEnum::NONE), _) => {
                    return Ok(());
                }
                (true, Some(HealthStatusEnum::STARTING), Some(by))
                    if tokio::time::Instant::now() < by =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                _ => break found,
            }
        };
        let state = found.state.clone().unwrap_or_default();
        let health = state.health.as_ref().and_then(|h| h.status);
        let mut reason = format!(
            "status {:?}, health {:?}, exit code {}, restarts {}",
            state.status.map(|s| s.to_string()).unwrap_or_default(),
            health.map(|h| h.to_string()).unwrap_or_default(),
            state.exit_code.unwrap_or(0),
            found.restart_count.unwrap_or(0)
        );
        if let Some(error) = state.error.filter(|e| !e.is_empty()) {
            reason.push_str(&format!(", error {error:?}"));
        }
        let tail = LogOptions { follow: false, tail: Some(5) };
        if let Ok(lines) = self.container_logs(&next, tail) {
            let lines: Vec<String> =
                lines.filter_map(|l| async move { l.ok().map(|l| l.text) }).collect().await;
            reason.push_str(&format!(", last output {lines:?}"));
        }
        Err(failed(reason))
    }

    /// Moves the new container to the instance's address and name.
    async fn switch_next(
        &self,
        key: &InstanceKey,
        net: &OwnerNetwork,
        address: Ipv4Addr,
    ) -> Result<(), Error> {
        let next = next_name(key);
        let disconnect =
            NetworkDisconnectRequest { container: Some(next.clone()), force: Some(true) };
        self.docker
            .disconnect_network(&net.name, disconnect)
            .await
            .map_err(|e| engine_context(format!("disconnect {next}"), e))?;
        let connect = NetworkConnectRequest {
            container: Some(next.clone()),
            endpoint_config: Some(EndpointSettings {
                ipam_config: Some(EndpointIpamConfig {
                    ipv4_address: Some(address.to_string()),
                    ..Default::default()
                }),
                aliases: Some(vec![key.name.to_string()]),
                ..Default::default()
            }),
        };
        self.docker
            .connect_network(&net.name, connect)
            .await
            .map_err(|e| engine_context(format!("connect {next} at {address}"), e))?;
        let rename = RenameContainerOptions { name: container_name(key) };
        self.docker
            .rename_container(&next, rename)
            .await
            .map_err(|e| engine_context(format!("rename {next}"), e))
    }

    /// Removes a new container an interrupted redeploy left, and its temporary lease.
    async fn discard_next(&self, key: &InstanceKey, net: &OwnerNetwork) -> Result<(), Error> {
        let found = match self.find_container(key, &next_name(key)).await {
            Ok(found) => found,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        self.remove_container(&next_name(key)).await?;
        if let Some(addr) = self.endpoint_address(&found, Some(net)) {
            self.release(&net.pool, addr, &next_lease_owner(key)?).await?;
        }
        Ok(())
    }

    /// The address a container has on `net` now.
    pub(super) fn endpoint_address(
        &self,
        found: &ContainerInspectResponse,
        net: Option<&OwnerNetwork>,
    ) -> Option<Ipv4Addr> {
        let endpoint = found.network_settings.as_ref()?.networks.as_ref()?.get(&net?.name)?;
        let configured = endpoint.ipam_config.as_ref().and_then(|c| c.ipv4_address.as_ref());
        parse_address(configured).or_else(|| parse_address(endpoint.ip_address.as_ref()))
    }

    /// Finishes or discards redeploys a crash interrupted: a lone new container becomes the
    /// instance; one beside its old container is removed.
    pub(super) async fn recover_redeploys(&self) -> Result<(), Error> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_owned(),
                vec![format!("{LABEL_MANAGED}=true")],
            )])),
            ..Default::default()
        };
        let summaries = self.docker.list_containers(Some(options)).await.map_err(engine)?;
        for summary in summaries {
            let is_next = summary.names.iter().flatten().any(|n| n.ends_with(".next"));
            let Some(labels) = summary.labels.as_ref().filter(|_| is_next) else { continue };
            let (Some(owner), Some(name)) = (labels.get(LABEL_OWNER), labels.get(LABEL_INSTANCE))
            else {
                continue;
            };
            let (Ok(owner), Ok(name)) = (owner.parse(), name.parse()) else { continue };
            let key = InstanceKey::new(owner, name);
            let Some(net) = self.owner_network(&key.owner).await? else { continue };
            match self.find_container(&key, &container_name(&key)).await {
                Ok(_) => self.discard_next(&key, &net).await?,
                Err(Error::NotFound { .. }) => {
                    let found = self.find_container(&key, &next_name(&key)).await?;
                    let address = parse_address(labels.get(LABEL_ADDRESS))
                        .ok_or_else(|| Error::Unmanaged(next_name(&key)))?;
                    let temporary = self.endpoint_address(&found, Some(&net));
                    self.switch_next(&key, &net, address).await?;
                    if let Some(temporary) = temporary.filter(|t| *t != address) {
                        self.release(&net.pool, temporary, &next_lease_owner(&key)?).await?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
