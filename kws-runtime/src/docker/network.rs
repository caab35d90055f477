//! One bridge network per owner, its subnet carved from the configured range on demand, and the
//! allocator pool that hands out its addresses.

use std::collections::HashMap;

use bollard::{
    models::{Ipam, IpamConfig, Network, NetworkCreateRequest},
    query_parameters::{InspectNetworkOptions, ListNetworksOptions},
};
use ipnet::Ipv4Net;
use kws_core::{DnsLabel, IfName, OwnerId};
use kws_ipam::PoolSpec;

use super::{
    DockerRuntime,
    names::{
        LABEL_MANAGED, LABEL_OWNER, bridge_name, engine, engine_context, is_managed, network_name,
        owner_labels, pool_name, status,
    },
};
use crate::Error;

/// The engine's option that names a bridge network's interface.
const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";

/// An owner's network as the engine has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerNetwork {
    /// The engine's name of the network.
    pub name: String,
    /// Its subnet.
    pub subnet: Ipv4Net,
    /// The allocator pool of its addresses.
    pub pool: DnsLabel,
    /// Its bridge interface on the host.
    pub bridge: IfName,
}

impl DockerRuntime {
    /// The owner's network, if it exists. `Unmanaged` when a network of its name lacks the labels.
    pub async fn owner_network(&self, owner: &OwnerId) -> Result<Option<OwnerNetwork>, Error> {
        let name = network_name(owner);
        let found = self.docker.inspect_network(&name, None::<InspectNetworkOptions>).await;
        let net = match found {
            Ok(net) => net,
            Err(e) if status(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(engine(e)),
        };
        if !is_managed(net.labels.as_ref(), owner) {
            return Err(Error::Unmanaged(format!("network {name}")));
        }
        owner_network_of(name, net).map(Some)
    }

    /// Every owner network kws manages on this engine, with its owner: what a host firewall
    /// needs to keep owners apart (kws-hostnet's isolated bridges). Networks without kws's
    /// labels, or whose name is not the one their owner label implies, are left out.
    pub async fn owner_networks(&self) -> Result<Vec<(OwnerId, OwnerNetwork)>, Error> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("{LABEL_MANAGED}=true")])]);
        let options = ListNetworksOptions { filters: Some(filters) };
        let networks = self.docker.list_networks(Some(options)).await.map_err(engine)?;
        let mut owned = Vec::new();
        for net in networks {
            let owner = net.labels.as_ref().and_then(|l| l.get(LABEL_OWNER));
            let Some(owner) = owner.and_then(|o| OwnerId::parse(o).ok()) else { continue };
            let name = network_name(&owner);
            if net.name.as_deref() != Some(name.as_str()) {
                continue;
            }
            owned.push((owner, owner_network_of(name, net)?));
        }
        owned.sort_by_key(|(_, net)| net.subnet);
        Ok(owned)
    }

    /// The owner's network, created with a free subnet of the configured range when missing,
    /// and its allocator pool. The flag says whether this call created the network.
    pub(crate) async fn ensure_network(
        &self,
        owner: &OwnerId,
    ) -> Result<(OwnerNetwork, bool), Error> {
        let lock = self.lock_for(&network_name(owner));
        let _guard = lock.lock().await;
        if let Some(net) = self.owner_network(owner).await? {
            self.ensure_pool(&net).await?;
            return Ok((net, false));
        }
        let net = self.create_network(owner).await?;
        if let Err(e) = self.ensure_pool(&net).await {
            let _ = self.docker.remove_network(&net.name).await;
            return Err(e);
        }
        Ok((net, true))
    }

    pub(crate) async fn ensure_pool(&self, net: &OwnerNetwork) -> Result<(), Error> {
        let spec = PoolSpec::new(net.pool.clone(), net.subnet.into());
        match self.allocator.create_pool(spec).await {
            Ok(()) | Err(kws_ipam::Error::PoolExists(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn create_network(&self, owner: &OwnerId) -> Result<OwnerNetwork, Error> {
        let name = network_name(owner);
        let range = self.config.owner_range;
        let prefix_len = self.config.owner_prefix_len;
        let mut taken = self.taken_subnets().await?;
        let candidates = range.subnets(prefix_len).map_err(|_| {
            Error::invalid("owner_prefix_len", prefix_len, "at least the range's prefix length")
        })?;
        for subnet in candidates {
            if taken.iter().any(|t| t.contains(&subnet.network()) || subnet.contains(&t.network()))
            {
                continue;
            }
            let gateway = subnet.hosts().next().unwrap_or(subnet.network());
            let request = NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".to_owned()),
                ipam: Some(Ipam {
                    driver: Some("default".to_owned()),
                    config: Some(vec![IpamConfig {
                        subnet: Some(subnet.to_string()),
                        gateway: Some(gateway.to_string()),
                        ..Default::default()
                    }]),
                    options: None,
                }),
                options: Some(HashMap::from([
                    ("com.docker.network.bridge.enable_icc".to_owned(), "true".to_owned()),
                    (BRIDGE_NAME_OPTION.to_owned(), bridge_name(&subnet)?.to_string()),
                ])),
                labels: Some(owner_labels(owner, &self.config.extra_labels)),
                ..Default::default()
            };
            match self.docker.create_network(request).await {
                Ok(_) => {
                    let (pool, bridge) = (pool_name(&subnet)?, bridge_name(&subnet)?);
                    return Ok(OwnerNetwork { name, pool, subnet, bridge });
                }
                // Another process made it meanwhile: use theirs.
                Err(e) if status(&e) == Some(409) => {
                    return self.owner_network(owner).await?.ok_or_else(|| engine(e));
                }
                // A network outside kws's view took the subnet meanwhile: try the next one.
                Err(e) if e.to_string().contains("overlap") => taken.push(subnet),
                Err(e) => return Err(engine_context(format!("create network {name}"), e)),
            }
        }
        Err(Error::NoSubnet { owner: owner.clone(), range, prefix_len })
    }

    async fn taken_subnets(&self) -> Result<Vec<Ipv4Net>, Error> {
        let networks =
            self.docker.list_networks(None::<ListNetworksOptions>).await.map_err(engine)?;
        Ok(networks
            .into_iter()
            .filter_map(|n| n.ipam.and_then(|i| i.config))
            .flatten()
            .filter_map(|c| c.subnet.and_then(|s| s.parse::<Ipv4Net>().ok()))
            .collect())
    }
}

/// An owner network from the engine's description of network `name`.
fn owner_network_of(name: String, net: Network) -> Result<OwnerNetwork, Error> {
    let subnet = net
        .ipam
        .and_then(|ipam| ipam.config)
        .into_iter()
        .flatten()
        .find_map(|c| c.subnet.and_then(|s| s.parse::<Ipv4Net>().ok()))
        .ok_or_else(|| Error::Unmanaged(format!("network {name} (no IPv4 subnet)")))?;
    let bridge = net
        .options
        .as_ref()
        .and_then(|o| o.get(BRIDGE_NAME_OPTION))
        .and_then(|b| IfName::parse(b).ok())
        .ok_or_else(|| Error::Unmanaged(format!("network {name} (no kws bridge name)")))?;
    Ok(OwnerNetwork { name, pool: pool_name(&subnet)?, subnet, bridge })
}
