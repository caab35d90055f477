//! The interface's addresses and link state, set over rtnetlink, inside the interface's
//! network namespace when it has one.

use std::{fs::File, os::fd::AsFd};

use futures::TryStreamExt as _;
use ipnet::IpNet;
use kws_core::{DnsLabel, IfName};
use rtnetlink::{Handle, LinkUnspec};

use crate::Error;

fn failed(interface: &IfName, context: String, source: std::io::Error) -> Error {
    Error::DeviceIo { interface: interface.clone(), context, source }
}

/// Gives `interface` its addresses (replacing equal ones) and brings it up. Netlink sockets
/// belong to the namespace of the thread that opens them, so the work runs on a thread of its
/// own that first enters `netns` (a thread of a pool must never change namespace).
pub(crate) async fn set_up(
    interface: &IfName,
    netns: Option<&DnsLabel>,
    addresses: &[IpNet],
) -> Result<(), Error> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (name, ns, addrs) = (interface.clone(), netns.cloned(), addresses.to_vec());
    std::thread::Builder::new()
        .name(format!("netlink-{interface}"))
        .spawn(move || {
            let _ = tx.send(set_up_here(&name, ns.as_ref(), &addrs));
        })
        .map_err(|e| failed(interface, "cannot start a netlink thread".into(), e))?;
    rx.await.map_err(|_| {
        failed(interface, "netlink thread ended".into(), std::io::Error::other("no answer"))
    })?
}

/// Moves the calling thread into the named network namespace (`ip netns` names). Only for a
/// thread of its own: a pooled thread must never change namespace.
pub(crate) fn enter_netns(netns: &DnsLabel) -> std::io::Result<()> {
    let path = format!("/var/run/netns/{netns}");
    let file = File::open(&path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("open {path}: {e}")))?;
    nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| std::io::Error::other(format!("enter {path}: {e}")))
}

fn set_up_here(interface: &IfName, netns: Option<&DnsLabel>, addrs: &[IpNet]) -> Result<(), Error> {
    if let Some(ns) = netns {
        enter_netns(ns).map_err(|e| failed(interface, "enter the namespace".into(), e))?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(interface, "netlink runtime".into(), e))?;
    runtime.block_on(async {
        let (connection, handle, _) = rtnetlink::new_connection()
            .map_err(|e| failed(interface, "open a netlink socket".into(), e))?;
        let task = tokio::spawn(connection);
        let result = configure(&handle, interface, addrs).await;
        task.abort();
        result
    })
}

async fn configure(handle: &Handle, interface: &IfName, addrs: &[IpNet]) -> Result<(), Error> {
    let netlink = |what: String| {
        move |e: rtnetlink::Error| failed(interface, what, std::io::Error::other(e.to_string()))
    };
    let links: Vec<_> = handle
        .link()
        .get()
        .match_name(interface.to_string())
        .execute()
        .try_collect()
        .await
        .map_err(netlink(format!("find link {interface}")))?;
    let index = links.first().map(|l| l.header.index).ok_or_else(|| {
        failed(interface, "find link".into(), std::io::Error::from(std::io::ErrorKind::NotFound))
    })?;
    for net in addrs {
        handle
            .address()
            .add(index, net.addr(), net.prefix_len())
            .replace()
            .execute()
            .await
            .map_err(netlink(format!("add address {net}")))?;
    }
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(netlink("set the link up".into()))
}
