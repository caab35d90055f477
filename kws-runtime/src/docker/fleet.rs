//! Purge, owner networks and the event feed of the Docker backend.

use std::collections::HashMap;

use bollard::query_parameters::{EventsOptions, RemoveVolumeOptions};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use kws_core::OwnerId;

use super::{
    DockerRuntime,
    names::{
        LABEL_INSTANCE, LABEL_MANAGED, LABEL_OWNER, container_name, engine_context, lease_owner,
        next_lease_owner, next_name, status, volume_name,
    },
};
use crate::{
    Error, InstanceChange, InstanceEvent, InstanceEventStream, InstanceKey, InstanceState,
    NetworkInfo, Purged, VolumePolicy,
};

impl DockerRuntime {
    pub(super) async fn purge_instance(
        &self,
        key: &InstanceKey,
        volume: VolumePolicy,
    ) -> Result<Purged, Error> {
        let name = container_name(key);
        let lock = self.lock_for(&name);
        let _guard = lock.lock().await;
        let mut purged = Purged::default();
        for container in [next_name(key), name.clone()] {
            match self.find_container(key, &container).await {
                Ok(_) => {
                    self.remove_container(&container).await?;
                    purged.containers += 1;
                }
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(net) = self.owner_network(&key.owner).await? {
            for holder in [next_lease_owner(key)?, lease_owner(key)?] {
                let held = match self.allocator.lookup_owner(&net.pool, &holder).await {
                    Ok(held) => held,
                    Err(kws_ipam::Error::PoolNotFound(_)) => None,
                    Err(e) => return Err(e.into()),
                };
                if let Some(lease) = held {
                    match self.allocator.release(&net.pool, lease.addr).await {
                        Ok(_) | Err(kws_ipam::Error::NotAllocated { .. }) => purged.leases += 1,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        if volume == VolumePolicy::Delete {
            let volume = volume_name(key);
            match self.docker.inspect_volume(&volume).await {
                Ok(v) if super::names::is_managed(Some(&v.labels), &key.owner) => {
                    let options = RemoveVolumeOptions { force: true };
                    match self.docker.remove_volume(&volume, Some(options)).await {
                        Ok(()) => purged.volume = true,
                        Err(e) if status(&e) == Some(404) => {}
                        Err(e) => return Err(engine_context(format!("remove volume {volume}"), e)),
                    }
                }
                Ok(_) => return Err(Error::Unmanaged(format!("volume {volume}"))),
                Err(e) if status(&e) == Some(404) => {}
                Err(e) => return Err(engine_context(format!("inspect volume {volume}"), e)),
            }
        }
        if purged.found_anything() {
            tracing::info!(%key, ?purged, "purged");
        }
        Ok(purged)
    }

    pub(super) async fn network_infos(&self) -> Result<Vec<NetworkInfo>, Error> {
        Ok(self
            .owner_networks()
            .await?
            .into_iter()
            .map(|(owner, net)| NetworkInfo { owner, subnet: net.subnet, bridge: Some(net.bridge) })
            .collect())
    }

    pub(super) async fn remove_network_of(&self, owner: &OwnerId) -> Result<bool, Error> {
        let Some(net) = self.owner_network(owner).await? else { return Ok(false) };
        match self.docker.remove_network(&net.name).await {
            Ok(()) => Ok(true),
            Err(e) if status(&e) == Some(404) => Ok(false),
            // The engine answers 403 (older engines 409) while endpoints are attached.
            Err(e) if matches!(status(&e), Some(403 | 409)) => {
                Err(Error::InUse(format!("network {}", net.name)))
            }
            Err(e) => Err(engine_context(format!("remove network {}", net.name), e)),
        }
    }

    /// Follows the engine's container events of managed instances. Each `start`, `die`,
    /// `stop`, `pause`, `unpause`, `restart` and `destroy` becomes one event; health changes
    /// become `Health`. The events of a redeploy's `.next` container are left out: the instance
    /// is its container under the instance's own name.
    pub(super) async fn watch_instances(&self) -> Result<InstanceEventStream, Error> {
        let filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("label".to_owned(), vec![format!("{LABEL_MANAGED}=true")]),
        ]);
        // The request goes out when the stream is first polled: `since` (the engine replays
        // what happened after it) makes the feed start at this call, not at that poll.
        let now = Utc::now();
        let since = format!("{}.{:09}", now.timestamp(), now.timestamp_subsec_nanos());
        let options =
            EventsOptions { filters: Some(filters), since: Some(since), ..Default::default() };
        // A ping first, so a dead engine is an error now rather than an empty stream.
        self.docker.ping().await.map_err(super::names::engine)?;
        let events = self.docker.events(Some(options));
        let stream = events.filter_map(|event| async move {
            let event = match event {
                Ok(event) => event,
                Err(e) => return Some(Err(super::names::engine(e))),
            };
            instance_event(event).map(Ok)
        });
        Ok(stream.boxed())
    }
}

/// The engine's event as an instance event, when it is one.
fn instance_event(event: bollard::models::EventMessage) -> Option<InstanceEvent> {
    let actor = event.actor?;
    let attributes = actor.attributes.unwrap_or_default();
    let owner = OwnerId::parse(attributes.get(LABEL_OWNER)?).ok()?;
    let name = attributes.get(LABEL_INSTANCE)?.parse().ok()?;
    let key = InstanceKey::new(owner, name);
    if attributes.get("name") != Some(&container_name(&key)) {
        return None;
    }
    let code = attributes.get("exitCode").and_then(|c| c.parse().ok()).unwrap_or(0);
    let action = event.action?;
    let change = match action.as_str() {
        "start" | "unpause" | "restart" => InstanceChange::State(InstanceState::Running),
        "die" => InstanceChange::State(InstanceState::Exited { code }),
        "pause" => InstanceChange::State(InstanceState::Paused),
        "destroy" => InstanceChange::Removed,
        a if a.starts_with("health_status") => InstanceChange::Health,
        _ => return None,
    };
    let at = match (event.time_nano, event.time) {
        (Some(nanos), _) => DateTime::<Utc>::from_timestamp_nanos(nanos),
        (None, Some(secs)) => DateTime::from_timestamp(secs, 0).unwrap_or_else(Utc::now),
        (None, None) => Utc::now(),
    };
    Some(InstanceEvent { key, change, at })
}
