//! The names and labels the backend gives engine objects, and how engine errors map in.

use std::{collections::HashMap, net::Ipv4Addr};

use ipnet::Ipv4Net;
use kws_core::{DnsLabel, IfName, OwnerId};
use kws_ipam::LeaseOwner;

use crate::{Error, InstanceKey};

/// Label: the owner of a container, network or volume.
pub const LABEL_OWNER: &str = "kws.owner";
/// Label: the instance a container or volume belongs to.
pub const LABEL_INSTANCE: &str = "kws.instance";
/// Label (value `true`): made and managed by kws; nothing without it is ever touched.
pub const LABEL_MANAGED: &str = "kws.managed";
/// Label: the instance's address on its owner's network.
pub(crate) const LABEL_ADDRESS: &str = "kws.address";
/// Label: the instance's spec, as JSON.
pub(crate) const LABEL_SPEC: &str = "kws.spec";

/// `kws.<owner>.<instance>`: dots cannot occur in labels, so the name is unambiguous.
pub(crate) fn container_name(key: &InstanceKey) -> String {
    format!("kws.{}.{}", key.owner, key.name)
}

/// The name of the container a redeploy starts beside the current one.
pub(crate) fn next_name(key: &InstanceKey) -> String {
    format!("{}.next", container_name(key))
}

/// The instance's workspace volume.
pub(crate) fn volume_name(key: &InstanceKey) -> String {
    format!("{}.workspace", container_name(key))
}

/// The owner's bridge network.
pub(crate) fn network_name(owner: &OwnerId) -> String {
    format!("kws.{owner}")
}

/// The allocator pool of an owner subnet: `kws-10-213-4-0-24`.
pub(crate) fn pool_name(subnet: &Ipv4Net) -> Result<DnsLabel, Error> {
    let [a, b, c, d] = subnet.network().octets();
    Ok(DnsLabel::parse(&format!("kws-{a}-{b}-{c}-{d}-{}", subnet.prefix_len()))?)
}

/// The owner network's bridge interface: `kwsb` and the subnet in hex (`kwsb0ad5040018` for
/// `10.213.4.0/24`). Subnets of one engine never overlap, so the name is unique, and the host's
/// firewall (kws-hostnet) can name the bridge without asking the engine.
pub(crate) fn bridge_name(subnet: &Ipv4Net) -> Result<IfName, Error> {
    let network = u32::from(subnet.network());
    Ok(IfName::parse(&format!("kwsb{network:08x}{:02x}", subnet.prefix_len()))?)
}

/// Who holds an instance's address lease.
pub(crate) fn lease_owner(key: &InstanceKey) -> Result<LeaseOwner, Error> {
    Ok(LeaseOwner::new(format!("instance/{}/{}", key.owner, key.name))?)
}

/// Who holds the temporary address of a redeploy's new container.
pub(crate) fn next_lease_owner(key: &InstanceKey) -> Result<LeaseOwner, Error> {
    Ok(LeaseOwner::new(format!("instance/{}/{}/next", key.owner, key.name))?)
}

/// The labels of an owner's objects: the managed mark, the owner, and the configured extras.
pub(crate) fn owner_labels(
    owner: &OwnerId,
    extra: &std::collections::BTreeMap<String, String>,
) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> =
        extra.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    labels.insert(LABEL_MANAGED.to_owned(), "true".to_owned());
    labels.insert(LABEL_OWNER.to_owned(), owner.to_string());
    labels
}

/// Whether `labels` mark an object as kws's and, when given, as `owner`'s.
pub(crate) fn is_managed(labels: Option<&HashMap<String, String>>, owner: &OwnerId) -> bool {
    labels.is_some_and(|l| {
        l.get(LABEL_MANAGED).map(String::as_str) == Some("true")
            && l.get(LABEL_OWNER).map(String::as_str) == Some(owner.as_str())
    })
}

/// Parses an address label.
pub(crate) fn parse_address(raw: Option<&String>) -> Option<Ipv4Addr> {
    raw.and_then(|s| s.parse().ok())
}

pub(crate) use kws_docker::status;

/// Wraps an engine error.
pub(crate) fn engine(err: bollard::errors::Error) -> Error {
    Error::Backend { backend: "docker", source: Box::new(err) }
}

/// An engine error with context.
pub(crate) fn engine_context(what: String, err: bollard::errors::Error) -> Error {
    Error::Backend { backend: "docker", source: format!("{what}: {err}").into() }
}
