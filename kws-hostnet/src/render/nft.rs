//! The nftables side: kws's whole table rendered as one atomic `nft -f` batch, and the netfilter
//! part of the state read back from the tags of a listed table.

use std::{fmt::Write as _, net::IpAddr};

use ipnet::IpNet;

use super::tag::RuleTag;
use crate::{HostNetState, Masquerade, PeerIsolation, PeerRule, PortForward};

/// The family and name of the only nftables table kws owns.
pub const TABLE: &str = "inet kws";

/// The conntrack mark bit kws sets on every flow it accepts. Another table's forward chain (such
/// as Docker's `DOCKER-USER`) can let exactly those flows through by matching this bit.
pub const CONNMARK: u32 = 0x0010_0000;

/// The batch that replaces kws's table as a whole, in one transaction: `add` makes the `delete`
/// valid when the table is missing, the `table` block recreates it. Nothing else is named, so
/// nothing outside the table changes.
pub fn render_batch(state: &HostNetState) -> String {
    let mut out = String::with_capacity(256 + 300 * state.port_forwards.len());
    let _ = writeln!(out, "add table {TABLE}\ndelete table {TABLE}\ntable {TABLE} {{");
    out.push_str(
        "\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n",
    );
    for forward in &state.port_forwards {
        dnat_rule(&mut out, forward);
    }
    out.push_str("\t}\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n");
    for masq in &state.masquerade {
        let _ = writeln!(
            out,
            "\t\t{} saddr {} oifname \"{}\" masquerade comment \"{}\"",
            net_family(&masq.source),
            masq.source,
            masq.out_interface,
            RuleTag::Masquerade(masq.clone())
        );
    }
    // Before the `filter` priority, so the conntrack mark is set when other tables look at it.
    out.push_str("\t}\n\tchain forward {\n\t\ttype filter hook forward priority filter - 1; policy accept;\n");
    let _ = writeln!(
        out,
        "\t\tct mark & {CONNMARK:#010x} == {CONNMARK:#010x} accept comment \"{}\"",
        RuleTag::Flows
    );
    if let Some(isolation) = &state.isolation {
        isolation_rules(&mut out, isolation);
    }
    for forward in &state.port_forwards {
        forward_accept_rule(&mut out, forward);
    }
    for masq in &state.masquerade {
        let _ = writeln!(
            out,
            "\t\t{} saddr {} oifname \"{}\" {} comment \"{}\"",
            net_family(&masq.source),
            masq.source,
            masq.out_interface,
            MARK_ACCEPT,
            RuleTag::Masquerade(masq.clone())
        );
    }
    out.push_str("\t}\n}\n");
    out
}

pub(crate) const MARK_ACCEPT: &str = "ct mark set ct mark | 0x00100000 accept";

fn iif(forward: &PortForward) -> String {
    forward.in_interface.as_ref().map(|i| format!("iifname \"{i}\" ")).unwrap_or_default()
}

fn dnat_rule(out: &mut String, forward: &PortForward) {
    let to = match forward.destination {
        IpAddr::V4(a) => format!("ip to {a}:{}", forward.destination_port),
        IpAddr::V6(a) => format!("ip6 to [{a}]:{}", forward.destination_port),
    };
    let _ = writeln!(
        out,
        "\t\t{}{} dport {} dnat {to} comment \"{}\"",
        iif(forward),
        forward.protocol,
        forward.external_port,
        RuleTag::Forward(forward.clone())
    );
}

fn forward_accept_rule(out: &mut String, forward: &PortForward) {
    let _ = writeln!(
        out,
        "\t\t{}{} daddr {} {} dport {} ct status dnat {MARK_ACCEPT} comment \"{}\"",
        iif(forward),
        addr_family(&forward.destination),
        forward.destination,
        forward.protocol,
        forward.destination_port,
        RuleTag::Forward(forward.clone())
    );
}

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

/// The netfilter part of a state, rebuilt from the `(chain, comment)` pairs of kws's table in
/// rule order. Rules without a kws tag are ignored.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct NetfilterReadback {
    pub(crate) masquerade: Vec<Masquerade>,
    pub(crate) port_forwards: Vec<PortForward>,
    pub(crate) isolation: Option<PeerIsolation>,
}

impl NetfilterReadback {
    /// Folds tagged rules: port forwards from the DNAT chain, masquerade from the SNAT chain,
    /// isolation from the forward chain (each item is also tagged on its forward accept).
    pub(crate) fn from_tags<'a>(rules: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut back = Self::default();
        for (chain, comment) in rules {
            let Ok(tag) = comment.parse::<RuleTag>() else { continue };
            match (chain, tag) {
                ("prerouting", RuleTag::Forward(f)) => back.port_forwards.push(f),
                ("postrouting", RuleTag::Masquerade(m)) => back.masquerade.push(m),
                ("forward", RuleTag::Isolate(interface)) => {
                    back.isolation.get_or_insert(PeerIsolation { interface, peers: Vec::new() });
                }
                ("forward", RuleTag::Peer { interface, address, allowed }) => {
                    let iso = back
                        .isolation
                        .get_or_insert(PeerIsolation { interface, peers: Vec::new() });
                    match iso.peers.iter_mut().find(|p| p.address == address) {
                        Some(peer) => peer.allowed.push(allowed),
                        None => iso.peers.push(PeerRule { address, allowed: vec![allowed] }),
                    }
                }
                _ => {}
            }
        }
        back
    }
}
