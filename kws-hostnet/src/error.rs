//! The crate's errors: `StateError` for a refused desired state (before anything changes) and
//! `Error` for what a backend met while changing or reading the host.

use std::net::IpAddr;

use ipnet::IpNet;
use kws_core::{IfName, ParseError};

use crate::Protocol;

/// Why a desired state was refused. Returned before any change is made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Two managed subnets (bridge addresses) share addresses.
    #[error("subnet {first} overlaps subnet {second}")]
    OverlappingSubnets {
        /// The subnet declared first.
        first: IpNet,
        /// The subnet declared later that overlaps it.
        second: IpNet,
    },
    /// An interface name that is not a valid Linux interface name.
    #[error(transparent)]
    InterfaceName(#[from] ParseError),
    /// A port outside `1..=65535`.
    #[error("port {value} is outside 1..=65535")]
    PortOutOfRange {
        /// The refused value.
        value: u32,
    },
    /// A port forward whose destination lies in no subnet of a managed bridge.
    #[error(
        "port forward {protocol} {port}: destination {destination} is outside every managed subnet"
    )]
    DestinationOutsideSubnets {
        /// The forward's protocol.
        protocol: Protocol,
        /// The forward's external port.
        port: u16,
        /// The destination address.
        destination: IpAddr,
    },
    /// Two port forwards claim the same address family, protocol and external port on
    /// overlapping incoming interfaces.
    #[error("external port {protocol} {port} is forwarded twice")]
    DuplicateExternalPort {
        /// The protocol.
        protocol: Protocol,
        /// The external port.
        port: u16,
    },
    /// The same bridge is declared twice.
    #[error("bridge {name} is declared twice")]
    DuplicateBridge {
        /// The bridge.
        name: IfName,
    },
    /// The same VPN peer address is declared twice.
    #[error("VPN peer {address} is declared twice")]
    DuplicatePeer {
        /// The peer address.
        address: IpAddr,
    },
    /// The same bridge is listed twice in `isolated_bridges`.
    #[error("isolated bridge {name} is listed twice")]
    DuplicateIsolatedBridge {
        /// The bridge.
        name: IfName,
    },
    /// A name in `isolated_bridges` that another part of the state uses as a non-bridge
    /// interface whose traffic must stay untouched (the VPN interface, an uplink).
    #[error("isolated bridge {name} is also {role}; only owner bridges may be isolated")]
    IsolatedBridgeConflict {
        /// The listed name.
        name: IfName,
        /// What else the name is, e.g. `a masquerade out_interface (an uplink)`.
        role: &'static str,
    },
    /// An address whose prefix length does not fit its family (a bridge address must be a host
    /// address inside its subnet, not the network itself).
    #[error("bridge address {address} is the network address of its subnet")]
    NetworkAddress {
        /// The refused address.
        address: IpNet,
    },
    /// A state file that could not be read or parsed.
    #[error("state file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// What a backend met while changing or reading the host.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A netlink request failed.
    #[error("netlink {operation}: {message}")]
    Netlink {
        /// The operation (`add bridge vmbr1`).
        operation: String,
        /// The kernel's or the library's message.
        message: String,
    },
    /// A sysctl could not be read or written.
    #[error("sysctl {key}: {source}")]
    Sysctl {
        /// The key (`net.ipv4.ip_forward`).
        key: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A command (`nft`, `iptables`) could not run or failed.
    #[error("{command}: {message}")]
    Command {
        /// The command line, as run.
        command: String,
        /// Its stderr, or why it could not start.
        message: String,
    },
    /// A link with a managed bridge's name exists but is not a bridge; kws does not take it.
    #[error("link {name} exists and is a {kind}, not a bridge kws created")]
    ForeignLink {
        /// The link name.
        name: IfName,
        /// Its kind as the kernel reports it.
        kind: String,
    },
    /// The kernel reported something kws cannot read back.
    #[error("cannot read back {what}: {message}")]
    Readback {
        /// What was being read.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// The backend's worker stopped (its thread ended).
    #[error("the host network worker has stopped")]
    WorkerGone,
}

/// Every error `teardown` met; teardown keeps going after each one.
#[derive(Debug, thiserror::Error)]
#[error("teardown met {} error(s): {}", .0.len(), join(.0))]
pub struct TeardownErrors(pub Vec<Error>);

fn join(errors: &[Error]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}
