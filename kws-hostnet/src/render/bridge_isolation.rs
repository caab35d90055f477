//! Isolation between bridges (`HostNetSpec::isolated_bridges`): two named sets and one drop
//! rule, whatever the number of bridges, and the list read back from the set.
//!
//! ```text
//! set isolated_bridges { type ifname; elements = { "kwsbA", "kwsbB" } }
//! set isolated_bridge_self { type ifname . ifname; elements = { "kwsbA" . "kwsbA", "kwsbB" . "kwsbB" } }
//! iifname @isolated_bridges oifname @isolated_bridges iifname . oifname != @isolated_bridge_self drop
//! ```
//!
//! nftables cannot compare two interface names with each other, so "the two bridges differ"
//! is "the pair is not one of the self pairs": frames bridged inside one bridge reach the
//! forward hook with `iifname == oifname` when `br_netfilter` is on, and must pass.

use std::fmt::Write as _;

use kws_core::IfName;

use super::tag::RuleTag;

/// The set of the isolated bridges' names.
pub(crate) const BRIDGES_SET: &str = "isolated_bridges";
/// The set of `name . name` pairs, one per isolated bridge.
const SELF_PAIRS_SET: &str = "isolated_bridge_self";

/// The two sets (nothing when no bridge is listed: an empty `elements` is not valid syntax).
pub(crate) fn render_sets(out: &mut String, bridges: &[IfName]) {
    if bridges.is_empty() {
        return;
    }
    let names = join(bridges, |b| format!("\"{b}\""));
    let pairs = join(bridges, |b| format!("\"{b}\" . \"{b}\""));
    let _ = write!(
        out,
        "\tset {BRIDGES_SET} {{\n\t\ttype ifname\n\t\telements = {{ {names} }}\n\t}}\n\
         \tset {SELF_PAIRS_SET} {{\n\t\ttype ifname . ifname\n\t\telements = {{ {pairs} }}\n\t}}\n"
    );
}

/// The drop rule (nothing when no bridge is listed). It must come first in the forward chain.
pub(crate) fn render_rule(out: &mut String, bridges: &[IfName]) {
    if bridges.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\t\tiifname @{BRIDGES_SET} oifname @{BRIDGES_SET} iifname . oifname != @{SELF_PAIRS_SET} drop comment \"{}\"",
        RuleTag::IsolatedBridges
    );
}

fn join(bridges: &[IfName], each: impl Fn(&IfName) -> String) -> String {
    bridges.iter().map(each).collect::<Vec<_>>().join(", ")
}

/// The names in the `nft -j` form of the bridges set (`"elem": ["a", "b"]`).
#[cfg_attr(not(feature = "linux"), allow(dead_code))]
pub(crate) fn read_set(set: &serde_json::Value) -> Result<Vec<IfName>, String> {
    let elements = set.get("elem").and_then(|e| e.as_array()).map_or(&[][..], Vec::as_slice);
    elements
        .iter()
        .map(|element| {
            let name = element
                .as_str()
                .ok_or_else(|| format!("unexpected element in set {BRIDGES_SET}: {element}"))?;
            IfName::parse(name).map_err(|e| e.to_string())
        })
        .collect()
}
