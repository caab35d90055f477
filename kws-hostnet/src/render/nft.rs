//! The nftables side: kws's whole table rendered as one atomic `nft -f` batch, and the netfilter
//! part of the state read back from the tags of a listed table.

use std::{collections::HashSet, fmt::Write as _, net::IpAddr};

use ipnet::IpNet;

use super::{bridge_isolation, tag::RuleTag};
use kws_core::IfName;

use crate::{HostNetState, Masquerade, PeerIsolation, PeerRule, Port, PortForward, Protocol};

/// The family and name of the only nftables table kws owns.
pub const TABLE: &str = "inet kws";

/// The conntrack mark bit kws sets on every flow it accepts. Another table's forward chain (such
/// as Docker's `DOCKER-USER`) can let exactly those flows through by matching this bit.
pub const CONNMARK: u32 = 0x0010_0000;

/// The batch that replaces kws's table as a whole, in one transaction: `add` makes the `delete`
/// valid when the table is missing, the `table` block recreates it. Nothing else is named, so
/// nothing outside the table changes.
///
/// Port forwards live in maps (`dnat4_any`, `dnat6_if_<interface>`, ...) and their accepts in
/// sets, one pair per incoming interface and family: one rule each, whatever the number of
/// forwards, so the batch, the listing and the per-packet lookup stay small.
pub fn render_batch(state: &HostNetState) -> String {
    let mut out = String::with_capacity(512 + 120 * state.port_forwards.len());
    let _ = writeln!(out, "add table {TABLE}\ndelete table {TABLE}\ntable {TABLE} {{");
    let groups = forward_groups(&state.port_forwards);
    for group in &groups {
        group.render_sets(&mut out);
    }
    bridge_isolation::render_sets(&mut out, &state.isolated_bridges);
    out.push_str(
        "\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n",
    );
    for group in &groups {
        let _ = writeln!(
            out,
            "\t\t{}meta l4proto {{ tcp, udp }} dnat {} to meta l4proto . th dport map @{} comment \"{}\"",
            group.iif(),
            group.family,
            group.name("dnat"),
            RuleTag::Dnat
        );
    }
    out.push_str("\t}\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n");
    for masq in &state.masquerade {
        masquerade_rule(&mut out, masq, "masquerade");
    }
    // Before the `filter` priority, so the conntrack mark is set when other tables look at it.
    out.push_str("\t}\n\tchain forward {\n\t\ttype filter hook forward priority filter - 1; policy accept;\n");
    // First: no kws accept (not even of an established, marked flow) may let traffic cross
    // between two isolated bridges.
    bridge_isolation::render_rule(&mut out, &state.isolated_bridges);
    let _ = writeln!(
        out,
        "\t\tct mark & {CONNMARK:#010x} == {CONNMARK:#010x} accept comment \"{}\"",
        RuleTag::Flows
    );
    if let Some(isolation) = &state.isolation {
        isolation_rules(&mut out, isolation);
    }
    for group in &groups {
        let _ = writeln!(
            out,
            "\t\t{}ct status dnat {} daddr . meta l4proto . th dport @{} {MARK_ACCEPT} comment \"{}\"",
            group.iif(),
            group.family,
            group.name("accept"),
            RuleTag::Dnat
        );
    }
    for masq in &state.masquerade {
        masquerade_rule(&mut out, masq, MARK_ACCEPT);
    }
    out.push_str("\t}\n");
    if let Some(isolation) = &state.isolation {
        input_rules(&mut out, isolation);
    }
    out.push_str("}\n");
    out
}

/// Peers reach nothing on the host itself but answers to what the host sent them and ICMP:
/// every service that listens on one of the host's addresses (a database, a dashboard, the
/// Docker bridges' gateways) is out of a peer's reach, as the instances of other tenants are.
fn input_rules(out: &mut String, isolation: &PeerIsolation) {
    let wg = &isolation.interface;
    let tag = RuleTag::Isolate(wg.clone());
    out.push_str(
        "\tchain input {\n\t\ttype filter hook input priority filter - 1; policy accept;\n",
    );
    let _ =
        writeln!(out, "\t\tiifname \"{wg}\" ct state established,related accept comment \"{tag}\"");
    let _ = writeln!(
        out,
        "\t\tiifname \"{wg}\" meta l4proto {{ icmp, ipv6-icmp }} accept comment \"{tag}\""
    );
    let _ = writeln!(out, "\t\tiifname \"{wg}\" drop comment \"{tag}\"");
    out.push_str("\t}\n");
}

/// A rule matching the flows of one masquerade item: the SNAT itself (`action` =
/// `masquerade`) or its forward accept.
fn masquerade_rule(out: &mut String, masq: &Masquerade, action: &str) {
    let _ = writeln!(
        out,
        "\t\t{} saddr {} oifname \"{}\" {action} comment \"{}\"",
        net_family(&masq.source),
        masq.source,
        masq.out_interface,
        RuleTag::Masquerade(masq.clone())
    );
}

/// The forwards that share an incoming interface and an address family.
struct ForwardGroup<'a> {
    family: &'static str,
    in_interface: Option<&'a IfName>,
    forwards: Vec<&'a PortForward>,
}

fn forward_groups(forwards: &[PortForward]) -> Vec<ForwardGroup<'_>> {
    let mut groups: Vec<ForwardGroup<'_>> = Vec::new();
    for forward in forwards {
        let family = addr_family(&forward.destination);
        let iif = forward.in_interface.as_ref();
        match groups.iter_mut().find(|g| g.family == family && g.in_interface == iif) {
            Some(group) => group.forwards.push(forward),
            None => {
                groups.push(ForwardGroup { family, in_interface: iif, forwards: vec![forward] })
            }
        }
    }
    groups.sort_by(|a, b| (a.family, a.in_interface).cmp(&(b.family, b.in_interface)));
    groups
}

impl ForwardGroup<'_> {
    /// `dnat4_any`, `accept6_if_eth0`: the family and the interface are in the name, so the
    /// state can be read back from the map alone.
    fn name(&self, what: &str) -> String {
        let v = if self.family == "ip" { 4 } else { 6 };
        match self.in_interface {
            None => format!("{what}{v}_any"),
            Some(i) => format!("{what}{v}_if_{i}"),
        }
    }

    fn iif(&self) -> String {
        self.in_interface.map(|i| format!("iifname \"{i}\" ")).unwrap_or_default()
    }

    fn render_sets(&self, out: &mut String) {
        let addr_type = if self.family == "ip" { "ipv4_addr" } else { "ipv6_addr" };
        let _ = write!(
            out,
            "\tmap {} {{\n\t\ttype inet_proto . inet_service : {addr_type} . inet_service\n\t\telements = {{ ",
            self.name("dnat")
        );
        for (i, f) in self.forwards.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(
                out,
                "{sep}{} . {} : {} . {}",
                f.protocol, f.external_port, f.destination, f.destination_port
            );
        }
        let _ = write!(
            out,
            " }}\n\t}}\n\tset {} {{\n\t\ttype {addr_type} . inet_proto . inet_service\n\t\telements = {{ ",
            self.name("accept")
        );
        let mut seen: HashSet<(IpAddr, Protocol, Port)> =
            HashSet::with_capacity(self.forwards.len());
        for f in &self.forwards {
            let key = (f.destination, f.protocol, f.destination_port);
            let sep = if seen.is_empty() { "" } else { ", " };
            if seen.insert(key) {
                let _ =
                    write!(out, "{sep}{} . {} . {}", f.destination, f.protocol, f.destination_port);
            }
        }
        out.push_str(" }\n\t}\n");
    }
}

pub(crate) const MARK_ACCEPT: &str = "ct mark set ct mark | 0x00100000 accept";

fn isolation_rules(out: &mut String, isolation: &PeerIsolation) {
    let wg = &isolation.interface;
    let isolate = RuleTag::Isolate(wg.clone());
    let _ = writeln!(out, "\t\tiifname \"{wg}\" oifname \"{wg}\" drop comment \"{isolate}\"");
    for peer in &isolation.peers {
        for allowed in &peer.allowed {
            let tag =
                RuleTag::Peer { interface: wg.clone(), address: peer.address, allowed: *allowed };
            let _ = writeln!(
                out,
                "\t\tiifname \"{wg}\" {fam} saddr {} {fam} daddr {allowed} {MARK_ACCEPT} comment \"{tag}\"",
                peer.address,
                fam = addr_family(&peer.address),
            );
        }
    }
    let _ = writeln!(out, "\t\tiifname \"{wg}\" drop comment \"{isolate}\"");
}

fn addr_family(addr: &IpAddr) -> &'static str {
    if addr.is_ipv4() { "ip" } else { "ip6" }
}

fn net_family(net: &IpNet) -> &'static str {
    addr_family(&net.addr())
}

/// The netfilter part of a state, rebuilt from `nft -j list table inet kws`: port forwards
/// from the `dnat*` maps, masquerade and isolation from the tags of the rules (in rule order),
/// isolated bridges from their set when the rule that uses it is there. Objects kws did not
/// render are ignored.
#[derive(Debug, Default, PartialEq, Eq)]
#[cfg_attr(not(feature = "linux"), allow(dead_code))]
pub(crate) struct NetfilterReadback {
    pub(crate) masquerade: Vec<Masquerade>,
    pub(crate) port_forwards: Vec<PortForward>,
    pub(crate) isolation: Option<PeerIsolation>,
    pub(crate) isolated_bridges: Vec<IfName>,
}

#[cfg_attr(not(feature = "linux"), allow(dead_code))]
impl NetfilterReadback {
    /// Reads the objects of `nft -j` output.
    pub(crate) fn from_json(listing: &serde_json::Value) -> Result<Self, String> {
        let mut back = Self::default();
        let mut bridges_set = Vec::new();
        let mut bridges_rule = false;
        let objects =
            listing.get("nftables").and_then(|v| v.as_array()).map_or(&[][..], Vec::as_slice);
        for object in objects {
            if let Some(map) = object.get("map") {
                back.read_dnat_map(map)?;
            } else if let Some(set) = object.get("set") {
                if set.get("name").and_then(|n| n.as_str()) == Some(bridge_isolation::BRIDGES_SET) {
                    bridges_set = bridge_isolation::read_set(set)?;
                }
            } else if let Some(rule) = object.get("rule") {
                let chain = rule.get("chain").and_then(|c| c.as_str());
                let tag = rule.get("comment").and_then(|c| c.as_str()).and_then(|c| c.parse().ok());
                match (chain, tag) {
                    (Some("forward"), Some(RuleTag::IsolatedBridges)) => bridges_rule = true,
                    (Some(chain), Some(tag)) => back.read_tag(chain, tag),
                    _ => {}
                }
            }
        }
        if bridges_rule {
            back.isolated_bridges = bridges_set;
        }
        Ok(back)
    }

    fn read_dnat_map(&mut self, map: &serde_json::Value) -> Result<(), String> {
        let name = map.get("name").and_then(|n| n.as_str()).unwrap_or_default();
        let Some(iif) = name.strip_prefix("dnat4_").or_else(|| name.strip_prefix("dnat6_")) else {
            return Ok(());
        };
        let in_interface = match iif.strip_prefix("if_") {
            Some(i) => Some(IfName::parse(i).map_err(|e| e.to_string())?),
            None => None,
        };
        let elements = map.get("elem").and_then(|e| e.as_array()).map_or(&[][..], Vec::as_slice);
        for element in elements {
            let bad = || format!("unexpected element in map {name}: {element}");
            let pair = |i: usize| -> Option<&Vec<serde_json::Value>> {
                element.get(i)?.get("concat")?.as_array()
            };
            let (Some(key), Some(value)) = (pair(0), pair(1)) else { return Err(bad()) };
            let port = |v: Option<&serde_json::Value>| {
                v.and_then(serde_json::Value::as_u64)
                    .and_then(|p| u32::try_from(p).ok())
                    .and_then(|p| Port::new(p).ok())
            };
            let protocol = match key.first().and_then(|p| p.as_str()) {
                Some("tcp") => Protocol::Tcp,
                Some("udp") => Protocol::Udp,
                _ => return Err(bad()),
            };
            let destination = value.first().and_then(|a| a.as_str()).and_then(|a| a.parse().ok());
            let (Some(external_port), Some(destination), Some(destination_port)) =
                (port(key.get(1)), destination, port(value.get(1)))
            else {
                return Err(bad());
            };
            self.port_forwards.push(PortForward {
                protocol,
                in_interface: in_interface.clone(),
                external_port,
                destination,
                destination_port,
            });
        }
        Ok(())
    }

    fn read_tag(&mut self, chain: &str, tag: RuleTag) {
        match (chain, tag) {
            ("postrouting", RuleTag::Masquerade(m)) => self.masquerade.push(m),
            ("forward", RuleTag::Isolate(interface)) => {
                self.isolation.get_or_insert(PeerIsolation { interface, peers: Vec::new() });
            }
            ("forward", RuleTag::Peer { interface, address, allowed }) => {
                let iso =
                    self.isolation.get_or_insert(PeerIsolation { interface, peers: Vec::new() });
                match iso.peers.iter_mut().find(|p| p.address == address) {
                    Some(peer) => peer.allowed.push(allowed),
                    None => iso.peers.push(PeerRule { address, allowed: vec![allowed] }),
                }
            }
            _ => {}
        }
    }
}
