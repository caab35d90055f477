//! The comment every kws rule carries: a short, parseable description of the declared item the
//! rule implements. `current()` reads the netfilter part of the state back from these tags.

use std::{fmt, net::IpAddr, str::FromStr};

use ipnet::IpNet;
use kws_core::IfName;

use crate::Masquerade;

/// What one kws rule implements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RuleTag {
    /// `kws masq <source> <out_interface>`.
    Masquerade(Masquerade),
    /// `kws dnat`: a rule that applies the port-forward maps (the forwards are read back from
    /// the maps themselves).
    Dnat,
    /// `kws peer <interface> <address> <allowed prefix>`.
    Peer { interface: IfName, address: IpAddr, allowed: IpNet },
    /// `kws isolate <interface>`.
    Isolate(IfName),
    /// `kws bridges`: the drop between isolated bridges (the bridges are read back from the
    /// `isolated_bridges` set).
    IsolatedBridges,
    /// `kws flows`: the accept of flows kws already accepted (no declared item).
    Flows,
}

impl fmt::Display for RuleTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleTag::Masquerade(m) => write!(f, "kws masq {} {}", m.source, m.out_interface),
            RuleTag::Dnat => f.write_str("kws dnat"),
            RuleTag::Peer { interface, address, allowed } => {
                write!(f, "kws peer {interface} {address} {allowed}")
            }
            RuleTag::Isolate(interface) => write!(f, "kws isolate {interface}"),
            RuleTag::IsolatedBridges => f.write_str("kws bridges"),
            RuleTag::Flows => f.write_str("kws flows"),
        }
    }
}

impl FromStr for RuleTag {
    type Err = String;

    fn from_str(comment: &str) -> Result<Self, String> {
        let bad = || format!("unknown kws rule comment {comment:?}");
        let words: Vec<&str> = comment.split(' ').collect();
        let ifname = |s: &str| IfName::parse(s).map_err(|e| e.to_string());
        let parsed = |s: &str| -> Result<IpAddr, String> { s.parse().map_err(|_| bad()) };
        let net = |s: &str| -> Result<IpNet, String> { s.parse().map_err(|_| bad()) };
        match words.as_slice() {
            ["kws", "masq", source, out] => Ok(RuleTag::Masquerade(Masquerade {
                source: net(source)?,
                out_interface: ifname(out)?,
            })),
            ["kws", "peer", interface, address, allowed] => Ok(RuleTag::Peer {
                interface: ifname(interface)?,
                address: parsed(address)?,
                allowed: net(allowed)?,
            }),
            ["kws", "isolate", interface] => Ok(RuleTag::Isolate(ifname(interface)?)),
            ["kws", "flows"] => Ok(RuleTag::Flows),
            ["kws", "bridges"] => Ok(RuleTag::IsolatedBridges),
            ["kws", "dnat"] => Ok(RuleTag::Dnat),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tag_reads_back_as_itself() {
        let tags = [
            "kws masq 192.168.69.0/29 eth0",
            "kws masq fd00::/64 up0",
            "kws dnat",
            "kws peer wg0 10.8.0.2 192.168.69.2/32",
            "kws isolate wg0",
            "kws flows",
            "kws bridges",
        ];
        for text in tags {
            let tag: RuleTag = text.parse().expect(text);
            assert_eq!(tag.to_string(), text);
        }
        for bad in [
            "kws fwd tcp 443",
            "kws peer wg0 10.8.0.2 x",
            "kws masq x eth0",
            "kws masq 1.0.0.0/8 a;b",
            "other",
        ] {
            assert!(bad.parse::<RuleTag>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_mark_in_rules_is_connmark() {
        assert!(
            super::super::nft::MARK_ACCEPT
                .contains(&format!("{:#010x}", super::super::nft::CONNMARK))
        );
        assert!(
            crate::DOCKER_USER_RULE.contains(&format!("{0:#x}/{0:#x}", crate::CONNMARK).as_str())
        );
    }
}
