//! From a spec to the engine's container, and from the engine's container back to an instance.

use std::{
    collections::{BTreeMap, HashMap},
    net::Ipv4Addr,
};

use bollard::{
    models::{
        ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum,
        EndpointIpamConfig, EndpointSettings, HealthConfig, HealthStatusEnum, HostConfig,
        HostConfigLogConfig, Mount as EngineMount, MountTypeEnum, NetworkingConfig, RestartPolicy,
        RestartPolicyNameEnum,
    },
    query_parameters::InspectContainerOptions,
};
use chrono::{DateTime, Datelike, Utc};

use super::{
    DockerRuntime,
    names::{
        LABEL_ADDRESS, LABEL_INSTANCE, LABEL_SPEC, engine, is_managed, owner_labels, parse_address,
        status, volume_name,
    },
    network::OwnerNetwork,
};
use crate::{
    Error, Health, ImageRef, InstanceInfo, InstanceKey, InstanceSpec, InstanceState, MountSource,
    Resources, WORKSPACE_PATH,
};

/// Where a new container goes: its network, the address it starts with, and the address that is
/// its identity (they differ only for a redeploy's new container before the switch).
#[derive(Debug)]
pub(crate) struct Placement<'a> {
    pub(crate) network: &'a OwnerNetwork,
    pub(crate) endpoint: Ipv4Addr,
    pub(crate) address: Ipv4Addr,
}

impl DockerRuntime {
    pub(crate) fn image_of(&self, spec: &InstanceSpec) -> ImageRef {
        spec.image.clone().unwrap_or_else(|| self.config.ide.image.clone())
    }

    pub(crate) fn ide_port_of(&self, spec: &InstanceSpec) -> u16 {
        spec.ide_port.unwrap_or(self.config.ide.port)
    }

    fn resources_of(&self, spec: &InstanceSpec) -> Resources {
        spec.resources.unwrap_or(self.config.default_resources)
    }

    /// Checks the spec and that its image is on the engine; returns the image's own user.
    pub(crate) async fn check_spec(&self, spec: &InstanceSpec) -> Result<Option<String>, Error> {
        spec.validate(&self.config.max_resources)?;
        let mut ports = spec.app_ports.clone();
        ports.push(self.ide_port_of(spec));
        ports.sort_unstable();
        if let Some(w) = ports.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::invalid("app_ports", w[0], "not the IDE port"));
        }
        let image = self.image_of(spec);
        match self.docker.inspect_image(image.as_str()).await {
            Ok(found) => Ok(found.config.and_then(|c| c.user).filter(|u| !u.is_empty())),
            Err(e) if status(&e) == Some(404) => Err(Error::ImageNotFound(image.to_string())),
            Err(e) => Err(engine(e)),
        }
    }

    /// The engine's container for `spec`, hardened.
    pub(crate) fn container_body(
        &self,
        spec: &InstanceSpec,
        image_user: Option<String>,
        placement: &Placement<'_>,
    ) -> Result<ContainerCreateBody, Error> {
        let key = InstanceKey::new(spec.owner.clone(), spec.name.clone());
        let resources = self.resources_of(spec);
        let spec_json = serde_json::to_string(spec)
            .map_err(|e| Error::Backend { backend: "docker", source: Box::new(e) })?;
        let mut labels = owner_labels(&spec.owner, &self.config.extra_labels);
        labels.insert(LABEL_INSTANCE.to_owned(), spec.name.to_string());
        labels.insert(LABEL_ADDRESS.to_owned(), placement.address.to_string());
        labels.insert(LABEL_SPEC.to_owned(), spec_json);
        // The image's user when it names a non-root one, else the configured non-root user.
        let user = match (spec.user, image_user) {
            (Some(user), _) => Some(user.to_string()),
            (None, Some(own)) if !is_root(&own) => None,
            (None, _) => Some(self.config.default_user.to_string()),
        };
        let mut ports: Vec<u16> = spec.app_ports.clone();
        ports.push(self.ide_port_of(spec));
        let exposed = ports.iter().map(|p| (format!("{p}/tcp"), HashMap::new())).collect();
        let mut tmpfs = HashMap::new();
        if spec.read_only_root {
            tmpfs.insert("/tmp".to_owned(), "rw,nosuid,nodev,size=67108864".to_owned());
        }
        for mount in &spec.mounts {
            if let MountSource::Tmpfs { size_bytes } = mount.source {
                tmpfs.insert(mount.target.clone(), format!("rw,nosuid,nodev,size={size_bytes}"));
            }
        }
        let host_config = HostConfig {
            memory: Some(resources.memory_bytes),
            memory_swap: Some(resources.memory_bytes),
            nano_cpus: Some((resources.cpus * 1e9).round() as i64),
            pids_limit: Some(resources.pids),
            cap_drop: Some(vec!["ALL".to_owned()]),
            cap_add: Some(self.config.cap_add.iter().map(|c| c.as_str().to_owned()).collect()),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            privileged: Some(false),
            init: Some(true),
            readonly_rootfs: Some(spec.read_only_root),
            tmpfs: Some(tmpfs),
            network_mode: Some(placement.network.name.clone()),
            mounts: Some(vec![EngineMount {
                target: Some(WORKSPACE_PATH.to_owned()),
                source: Some(volume_name(&key)),
                typ: Some(MountTypeEnum::VOLUME),
                ..Default::default()
            }]),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".to_owned()),
                config: Some(HashMap::from([
                    ("max-size".to_owned(), "10m".to_owned()),
                    ("max-file".to_owned(), "3".to_owned()),
                ])),
            }),
            ..Default::default()
        };
        let endpoint = EndpointSettings {
            ipam_config: Some(EndpointIpamConfig {
                ipv4_address: Some(placement.endpoint.to_string()),
                ..Default::default()
            }),
            aliases: Some(vec![spec.name.to_string()]),
            ..Default::default()
        };
        let nanos = |d: std::time::Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        let healthcheck = spec.health_check.as_ref().map(|check| HealthConfig {
            test: Some(std::iter::once("CMD".to_owned()).chain(check.command.clone()).collect()),
            interval: Some(nanos(check.interval)),
            timeout: Some(nanos(check.timeout)),
            retries: Some(i64::from(check.retries)),
            ..Default::default()
        });
        Ok(ContainerCreateBody {
            hostname: Some(spec.name.to_string()),
            healthcheck,
            user,
            image: Some(self.image_of(spec).to_string()),
            cmd: spec.command.clone(),
            env: Some(container_env(&spec.env, self.ide_port_of(spec))),
            exposed_ports: Some(exposed),
            working_dir: Some(WORKSPACE_PATH.to_owned()),
            labels: Some(labels),
            host_config: Some(host_config),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(placement.network.name.clone(), endpoint)])),
            }),
            ..Default::default()
        })
    }

    /// The managed container of `name` that belongs to `key`; `NotFound` when there is none or
    /// when it lacks kws's labels (such a container is never touched).
    pub(crate) async fn find_container(
        &self,
        key: &InstanceKey,
        name: &str,
    ) -> Result<ContainerInspectResponse, Error> {
        let found = match self.docker.inspect_container(name, None::<InspectContainerOptions>).await
        {
            Ok(found) => found,
            Err(e) if status(&e) == Some(404) => return Err(key.not_found()),
            Err(e) => return Err(engine(e)),
        };
        let labels = found.config.as_ref().and_then(|c| c.labels.as_ref());
        let same_instance = labels
            .and_then(|l| l.get(LABEL_INSTANCE))
            .is_some_and(|i| i.as_str() == key.name.as_str());
        if is_managed(labels, &key.owner) && same_instance {
            Ok(found)
        } else {
            Err(key.not_found())
        }
    }

    /// The instance a managed container makes.
    pub(crate) fn info_of(&self, found: ContainerInspectResponse) -> Result<InstanceInfo, Error> {
        let corrupt = |what: &str| Error::Backend {
            backend: "docker",
            source: format!("container {:?}: {what}", found.name).into(),
        };
        let labels = found.config.as_ref().and_then(|c| c.labels.as_ref());
        let spec: InstanceSpec = labels
            .and_then(|l| l.get(LABEL_SPEC))
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| corrupt("no readable kws.spec label"))?;
        let address = parse_address(labels.and_then(|l| l.get(LABEL_ADDRESS)))
            .ok_or_else(|| corrupt("no readable kws.address label"))?;
        let state = found.state.as_ref();
        let started_at = state
            .and_then(|s| s.started_at.as_deref())
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| t.year() > 1);
        let health = state.and_then(|s| s.health.as_ref()).and_then(|h| match h.status {
            Some(HealthStatusEnum::STARTING) => Some(Health::Starting),
            Some(HealthStatusEnum::HEALTHY) => Some(Health::Healthy),
            Some(HealthStatusEnum::UNHEALTHY) => Some(Health::Unhealthy),
            _ => None,
        });
        let exit_code = state.and_then(|s| s.exit_code).unwrap_or(0);
        let state = match state.and_then(|s| s.status) {
            Some(ContainerStateStatusEnum::RUNNING) => InstanceState::Running,
            Some(ContainerStateStatusEnum::PAUSED) => InstanceState::Paused,
            Some(ContainerStateStatusEnum::RESTARTING) => InstanceState::Restarting,
            Some(ContainerStateStatusEnum::EXITED) => InstanceState::Exited { code: exit_code },
            Some(ContainerStateStatusEnum::REMOVING) => InstanceState::Removing,
            Some(ContainerStateStatusEnum::DEAD) => InstanceState::Dead,
            _ => InstanceState::Created,
        };
        let key = InstanceKey::new(spec.owner.clone(), spec.name.clone());
        Ok(InstanceInfo {
            container_id: found.id.clone().unwrap_or_default(),
            image: self.image_of(&spec),
            state,
            health,
            started_at,
            address,
            ide_port: self.ide_port_of(&spec),
            app_ports: spec.app_ports.clone(),
            volume: volume_name(&key),
            key,
            spec,
        })
    }
}

/// The variable that tells the IDE image which port to listen on (kws/ide:1 reads it).
pub(crate) const IDE_PORT_ENV: &str = "KWS_IDE_PORT";

/// The container's environment: the spec's variables, then `KWS_IDE_PORT=<the IDE port>`. The
/// runtime owns that one: a spec's own `KWS_IDE_PORT` is dropped (the engine would keep both
/// and a program would see the first), so the IDE listens where the runtime routes to.
fn container_env(env: &BTreeMap<String, String>, ide_port: u16) -> Vec<String> {
    env.iter()
        .filter(|(k, _)| k.as_str() != IDE_PORT_ENV)
        .map(|(k, v)| format!("{k}={v}"))
        .chain(std::iter::once(format!("{IDE_PORT_ENV}={ide_port}")))
        .collect()
}

fn is_root(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or(user);
    name == "0" || name == "root"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ide_port_is_in_the_environment() {
        let env = BTreeMap::from([("A".to_owned(), "1".to_owned())]);
        assert_eq!(container_env(&env, 8080), ["A=1", "KWS_IDE_PORT=8080"]);
        assert_eq!(container_env(&BTreeMap::new(), 9000), ["KWS_IDE_PORT=9000"]);
    }

    #[test]
    fn a_spec_cannot_move_the_ide_port() {
        let env = BTreeMap::from([
            ("KWS_IDE_PORT".to_owned(), "1".to_owned()),
            ("KWS_IDE_PORTS".to_owned(), "kept".to_owned()),
        ]);
        assert_eq!(container_env(&env, 8099), ["KWS_IDE_PORTS=kept", "KWS_IDE_PORT=8099"]);
    }
}
