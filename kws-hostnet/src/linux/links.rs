//! Bridges and their addresses over rtnetlink. kws owns a link when it carries the alias
//! [`LINK_ALIAS`]; links without it are never changed or deleted.

use futures::TryStreamExt as _;
use ipnet::IpNet;
use kws_core::IfName;
use rtnetlink::{
    Handle, LinkBridge, LinkUnspec,
    packet_route::{
        address::{AddressAttribute, AddressMessage, AddressScope},
        link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage},
    },
};

use crate::{Bridge, Error, LINK_ALIAS};

fn netlink(operation: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let operation = operation.into();
    move |e| Error::Netlink { operation, message: e.to_string() }
}

/// A link as far as kws cares.
struct Link {
    index: u32,
    name: String,
    kind: Option<String>,
    owned: bool,
    up: bool,
}

impl Link {
    fn from_message(msg: &LinkMessage) -> Self {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            owned: false,
            up: msg.header.flags.contains(LinkFlags::Up),
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name.clone_from(n),
                LinkAttribute::IfAlias(a) => link.owned = a == LINK_ALIAS,
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(kind) = info {
                            link.kind = Some(kind.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }

    fn is_bridge(&self) -> bool {
        self.kind.as_deref() == Some(&InfoKind::Bridge.to_string())
    }
}

async fn links(handle: &Handle) -> Result<Vec<Link>, Error> {
    let msgs: Vec<LinkMessage> =
        handle.link().get().execute().try_collect().await.map_err(netlink("list links"))?;
    Ok(msgs.iter().map(Link::from_message).collect())
}

/// Global addresses of a link, with their messages (for deletion).
async fn addresses(handle: &Handle, index: u32) -> Result<Vec<(IpNet, AddressMessage)>, Error> {
    let msgs: Vec<AddressMessage> = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(netlink("list addresses"))?;
    Ok(msgs
        .into_iter()
        .filter(|m| m.header.index == index && m.header.scope == AddressScope::Universe)
        .filter_map(|m| {
            let addr = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })?;
            let net = IpNet::new(addr, m.header.prefix_len).ok()?;
            Some((net, m))
        })
        .collect())
}

/// Creates, adopts and brings up the desired bridges, sets their addresses exactly, and deletes
/// kws-owned links no longer desired. Returns (links changed, addresses changed).
pub(super) async fn converge(handle: &Handle, desired: &[Bridge]) -> Result<(usize, usize), Error> {
    let mut links_changed = 0;
    let mut addresses_changed = 0;
    let existing = links(handle).await?;
    for bridge in desired {
        let name = bridge.name.as_str();
        let index = match existing.iter().find(|l| l.name == name) {
            Some(link) if !link.is_bridge() => {
                return Err(Error::ForeignLink {
                    name: bridge.name.clone(),
                    kind: link.kind.clone().unwrap_or_else(|| "device".into()),
                });
            }
            Some(link) => {
                if !link.owned || !link.up {
                    let msg = LinkUnspec::new_with_index(link.index).alias(LINK_ALIAS).up().build();
                    handle
                        .link()
                        .set(msg)
                        .execute()
                        .await
                        .map_err(netlink(format!("set {name} up")))?;
                    links_changed += 1;
                }
                link.index
            }
            None => {
                let msg = LinkBridge::new(name).build();
                handle
                    .link()
                    .add(msg)
                    .execute()
                    .await
                    .map_err(netlink(format!("add bridge {name}")))?;
                links_changed += 1;
                let index = index_of(handle, name).await?;
                // The kernel ignores IFLA_IFALIAS on RTM_NEWLINK: the mark of ownership needs
                // its own request.
                let msg = LinkUnspec::new_with_index(index).alias(LINK_ALIAS).up().build();
                handle.link().set(msg).execute().await.map_err(netlink(format!("mark {name}")))?;
                index
            }
        };
        addresses_changed += converge_addresses(handle, index, bridge).await?;
    }
    for stale in
        existing.iter().filter(|l| l.owned && !desired.iter().any(|b| b.name.as_str() == l.name))
    {
        handle
            .link()
            .del(stale.index)
            .execute()
            .await
            .map_err(netlink(format!("delete {}", stale.name)))?;
        links_changed += 1;
    }
    Ok((links_changed, addresses_changed))
}

async fn index_of(handle: &Handle, name: &str) -> Result<u32, Error> {
    let msgs: Vec<LinkMessage> = handle
        .link()
        .get()
        .match_name(name.to_owned())
        .execute()
        .try_collect()
        .await
        .map_err(netlink(format!("find {name}")))?;
    msgs.first().map(|m| m.header.index).ok_or_else(|| Error::Readback {
        what: "link",
        message: format!("{name} missing right after it was created"),
    })
}

async fn converge_addresses(handle: &Handle, index: u32, bridge: &Bridge) -> Result<usize, Error> {
    let mut changed = 0;
    let present = addresses(handle, index).await?;
    for (net, msg) in &present {
        if !bridge.addresses.contains(net) {
            handle
                .address()
                .del(msg.clone())
                .execute()
                .await
                .map_err(netlink(format!("delete {net} from {}", bridge.name)))?;
            changed += 1;
        }
    }
    for net in &bridge.addresses {
        if !present.iter().any(|(p, _)| p == net) {
            handle
                .address()
                .add(index, net.addr(), net.prefix_len())
                .replace()
                .execute()
                .await
                .map_err(netlink(format!("add {net} to {}", bridge.name)))?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// The bridges kws owns, with their global addresses, in link index order.
pub(super) async fn read(handle: &Handle) -> Result<Vec<Bridge>, Error> {
    let mut bridges = Vec::new();
    for link in links(handle).await?.into_iter().filter(|l| l.owned) {
        let name = IfName::parse(&link.name)
            .map_err(|e| Error::Readback { what: "link name", message: e.to_string() })?;
        let addresses = addresses(handle, link.index).await?.into_iter().map(|(n, _)| n).collect();
        bridges.push(Bridge { name, addresses });
    }
    Ok(bridges)
}

/// Deletes every link kws owns; returns the errors met (and keeps going).
pub(super) async fn remove_owned(handle: &Handle) -> Vec<Error> {
    let owned = match links(handle).await {
        Ok(all) => all.into_iter().filter(|l| l.owned),
        Err(e) => return vec![e],
    };
    let mut errors = Vec::new();
    for link in owned {
        if let Err(e) = handle.link().del(link.index).execute().await {
            errors.push(netlink(format!("delete {}", link.name))(e));
        }
    }
    errors
}
