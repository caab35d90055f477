//! The desired state of the host router, and its whole-state validation.

use std::{fmt, net::IpAddr, ops::Deref};

use ipnet::IpNet;
use kws_core::IfName;
use serde::{Deserialize, Serialize};

use crate::{Port, StateError};

/// A bridge kws owns, with the addresses (gateway address and prefix) it carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bridge {
    /// The link name, e.g. `vmbr1`.
    pub name: IfName,
    /// Its addresses in CIDR form, e.g. `192.168.69.1/29`: the address is the gateway, the
    /// prefix is the managed subnet behind the bridge.
    #[serde(default)]
    pub addresses: Vec<IpNet>,
}

/// IP forwarding switches (`net.ipv4.ip_forward`, `net.ipv6.conf.all.forwarding`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarding {
    /// IPv4 forwarding.
    pub ipv4: bool,
    /// IPv6 forwarding.
    pub ipv6: bool,
}

/// Source NAT: traffic from `source` leaving through `out_interface` takes that interface's
/// address. Its forward accept comes with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Masquerade {
    /// The source prefix, e.g. `192.168.69.0/29`.
    pub source: IpNet,
    /// The uplink, e.g. `eth0`.
    pub out_interface: IfName,
}

/// A transport protocol of a port forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`, as nftables and iptables spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Destination NAT of one external port to an address behind a managed bridge, with the
/// forward accept that lets it through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortForward {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Only packets arriving on this interface are forwarded; any interface when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_interface: Option<IfName>,
    /// The port on the host.
    pub external_port: Port,
    /// The destination address, inside a managed subnet.
    pub destination: IpAddr,
    /// The port at the destination.
    pub destination_port: Port,
}

/// One VPN peer and the only destinations it may reach.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRule {
    /// The peer's VPN address.
    pub address: IpAddr,
    /// The prefixes it may reach (its owner's instances).
    #[serde(default)]
    pub allowed: Vec<IpNet>,
}

/// Peer isolation on the WireGuard interface: each peer reaches only its listed destinations,
/// peer-to-peer traffic is dropped, and anything else arriving on the interface is dropped,
/// the host itself included (its input: only answers to the host's own traffic and ICMP get
/// in, so no service listening on the host is in a peer's reach).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerIsolation {
    /// The WireGuard interface, e.g. `wg0`.
    pub interface: IfName,
    /// The peers.
    #[serde(default)]
    pub peers: Vec<PeerRule>,
}

/// The desired state as written (in code or in a state file), before validation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostNetSpec {
    /// Bridges kws owns.
    #[serde(default)]
    pub bridges: Vec<Bridge>,
    /// Forwarding switches.
    #[serde(default)]
    pub forwarding: Forwarding,
    /// Source NAT rules.
    #[serde(default)]
    pub masquerade: Vec<Masquerade>,
    /// Port forwards.
    #[serde(default)]
    pub port_forwards: Vec<PortForward>,
    /// Peer isolation, when a VPN interface is managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<PeerIsolation>,
    /// Bridges isolated from each other (one per owner, e.g. Docker bridges `kwsb0a290100`).
    ///
    /// # Contract
    /// - Traffic forwarded from one listed bridge to a *different* listed bridge is dropped,
    ///   in both directions and whatever its conntrack state or kws mark: the drop is the first
    ///   rule of kws's forward chain, before the accept of kws's marked flows, so neither an
    ///   established flow nor a port forward's DNAT (a container of one bridge connecting to
    ///   the host's public address and port forwarded into another bridge) crosses between
    ///   two listed bridges. A drop in a forward-hook base chain is final, whatever other
    ///   tables (Docker's `DOCKER-ISOLATION-STAGE-*` chains) do, and while they rewrite their
    ///   own rules.
    /// - Untouched: traffic inside one bridge (also when `br_netfilter` shows bridged frames
    ///   to the forward hook with the same bridge as incoming and outgoing interface), traffic
    ///   between a listed bridge and any unlisted interface (the uplink, a VPN interface, whose
    ///   [`PeerIsolation`] still applies), and traffic to or from the host itself (input and
    ///   output are not the forward hook: the host's reverse proxy reaches every bridge).
    /// - Names are matched as names, not link indexes: a listed bridge need not exist yet, and
    ///   listing it before the bridge is created (before `docker network create`) leaves no
    ///   moment in which the new bridge is not isolated. The bridges need not be kws's own
    ///   [`bridges`](Self::bridges) (Docker creates owner bridges); a listed name must not be
    ///   the VPN interface or a masquerade uplink, and appears once.
    /// - Every listed bridge is isolated from every other one: list one bridge per owner (two
    ///   bridges of one owner would be isolated from each other too).
    /// - The rule set is O(1) in the number of bridges (two named sets), so adding an owner
    ///   re-renders one set element pair, not a rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub isolated_bridges: Vec<IfName>,
}

/// The whole desired state of the host router, checked as a whole.
///
/// # Contract
/// A value exists only after [`HostNetState::new`] accepted the spec: managed subnets do not
/// overlap, every port forward lands inside a managed subnet, no external port is forwarded
/// twice, no bridge or peer is declared twice, an isolated bridge is listed once and is neither
/// the VPN interface nor an uplink. Backends can therefore render it without
/// further checks, and a refused state has changed nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "HostNetSpec", into = "HostNetSpec")]
pub struct HostNetState(HostNetSpec);

impl HostNetState {
    /// Validates `spec` as a whole.
    pub fn new(spec: HostNetSpec) -> Result<Self, StateError> {
        check_bridges(&spec)?;
        check_forwards(&spec)?;
        check_peers(&spec)?;
        check_isolated_bridges(&spec)?;
        Ok(Self(spec))
    }

    /// The empty state: nothing managed.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The validated spec.
    pub fn spec(&self) -> &HostNetSpec {
        &self.0
    }

    /// The subnets behind the managed bridges.
    pub fn managed_subnets(&self) -> impl Iterator<Item = IpNet> + '_ {
        managed_subnets(&self.0)
    }
}

impl Deref for HostNetState {
    type Target = HostNetSpec;

    fn deref(&self) -> &HostNetSpec {
        &self.0
    }
}

impl TryFrom<HostNetSpec> for HostNetState {
    type Error = StateError;

    fn try_from(spec: HostNetSpec) -> Result<Self, StateError> {
        Self::new(spec)
    }
}

impl From<HostNetState> for HostNetSpec {
    fn from(state: HostNetState) -> HostNetSpec {
        state.0
    }
}

fn managed_subnets(spec: &HostNetSpec) -> impl Iterator<Item = IpNet> + '_ {
    spec.bridges.iter().flat_map(|b| b.addresses.iter().map(IpNet::trunc))
}

fn check_bridges(spec: &HostNetSpec) -> Result<(), StateError> {
    for (i, bridge) in spec.bridges.iter().enumerate() {
        if spec.bridges[..i].iter().any(|b| b.name == bridge.name) {
            return Err(StateError::DuplicateBridge { name: bridge.name.clone() });
        }
        for address in &bridge.addresses {
            let host_bits = address.max_prefix_len() - address.prefix_len();
            // /31, /32, /127 and /128 have no separate network address (RFC 3021).
            if host_bits > 1 && address.addr() == address.network() {
                return Err(StateError::NetworkAddress { address: *address });
            }
        }
    }
    let subnets: Vec<IpNet> = managed_subnets(spec).collect();
    for (i, second) in subnets.iter().enumerate() {
        if let Some(first) = subnets[..i].iter().find(|f| f.contains(second) || second.contains(*f))
        {
            return Err(StateError::OverlappingSubnets { first: *first, second: *second });
        }
    }
    Ok(())
}

fn check_forwards(spec: &HostNetSpec) -> Result<(), StateError> {
    for (i, forward) in spec.port_forwards.iter().enumerate() {
        if !managed_subnets(spec).any(|net| net.contains(&forward.destination)) {
            return Err(StateError::DestinationOutsideSubnets {
                protocol: forward.protocol,
                port: forward.external_port.get(),
                destination: forward.destination,
            });
        }
        let clash = spec.port_forwards[..i].iter().any(|earlier| {
            // IPv4 and IPv6 packets to the same port are different traffic.
            earlier.protocol == forward.protocol
                && earlier.external_port == forward.external_port
                && earlier.destination.is_ipv4() == forward.destination.is_ipv4()
                && match (&earlier.in_interface, &forward.in_interface) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        });
        if clash {
            return Err(StateError::DuplicateExternalPort {
                protocol: forward.protocol,
                port: forward.external_port.get(),
            });
        }
    }
    Ok(())
}

fn check_peers(spec: &HostNetSpec) -> Result<(), StateError> {
    let Some(isolation) = &spec.isolation else { return Ok(()) };
    for (i, peer) in isolation.peers.iter().enumerate() {
        if isolation.peers[..i].iter().any(|p| p.address == peer.address) {
            return Err(StateError::DuplicatePeer { address: peer.address });
        }
    }
    Ok(())
}

fn check_isolated_bridges(spec: &HostNetSpec) -> Result<(), StateError> {
    let vpn = spec.isolation.as_ref().map(|i| &i.interface);
    for (i, name) in spec.isolated_bridges.iter().enumerate() {
        if spec.isolated_bridges[..i].contains(name) {
            return Err(StateError::DuplicateIsolatedBridge { name: name.clone() });
        }
        let role = if vpn == Some(name) {
            Some("the peer isolation (VPN) interface")
        } else if spec.masquerade.iter().any(|m| m.out_interface == *name) {
            Some("a masquerade out_interface (an uplink)")
        } else {
            None
        };
        if let Some(role) = role {
            return Err(StateError::IsolatedBridgeConflict { name: name.clone(), role });
        }
    }
    Ok(())
}
