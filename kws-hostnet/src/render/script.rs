//! The plan backend's output: the `ip`, `sysctl`, `nft` and `iptables` commands that bring a
//! host to a state, as a POSIX shell script. Every name in it is an `IfName`, an address or a
//! number, so every word is shell-safe without quoting.

use std::fmt::Write as _;

use super::nft::{TABLE, render_batch};
use crate::HostNetState;

/// The alias kws sets on links it owns (`ip link set DEV alias kws-hostnet`).
pub const LINK_ALIAS: &str = "kws-hostnet";

/// The rule kws inserts at the top of Docker's `DOCKER-USER` chain (iptables syntax): accept
/// the flows kws's own table accepted (they carry [`crate::CONNMARK`]).
pub const DOCKER_USER_RULE: [&str; 10] = [
    "-m",
    "connmark",
    "--mark",
    "0x100000/0x100000",
    "-m",
    "comment",
    "--comment",
    "kws-hostnet",
    "-j",
    "ACCEPT",
];

/// The sysctl keys of the forwarding switches.
pub const SYSCTL_IPV4_FORWARD: &str = "net.ipv4.ip_forward";
/// See [`SYSCTL_IPV4_FORWARD`].
pub const SYSCTL_IPV6_FORWARD: &str = "net.ipv6.conf.all.forwarding";

/// The script that applies `state` (idempotent: running it twice changes nothing more).
pub fn render_apply(state: &HostNetState) -> String {
    let mut out = String::from(
        "#!/bin/sh\n# kws-hostnet plan: the commands that bring this host to the desired state.\nset -eu\n",
    );
    for bridge in &state.bridges {
        let name = &bridge.name;
        let _ = writeln!(
            out,
            "ip link show dev {name} >/dev/null 2>&1 || ip link add name {name} type bridge\n\
             ip link set dev {name} alias {LINK_ALIAS} up"
        );
        for address in &bridge.addresses {
            let _ = writeln!(out, "ip address replace {address} dev {name}");
        }
    }
    let on = |b: bool| u8::from(b);
    let _ = writeln!(
        out,
        "sysctl -qw {SYSCTL_IPV4_FORWARD}={}\nsysctl -qw {SYSCTL_IPV6_FORWARD}={}",
        on(state.forwarding.ipv4),
        on(state.forwarding.ipv6)
    );
    let _ = write!(out, "nft -f - <<'KWS_NFT'\n{}KWS_NFT\n", render_batch(state));
    let rule = DOCKER_USER_RULE.join(" ");
    out.push_str(
        "# Docker's FORWARD policy is drop: let kws's flows through DOCKER-USER when it exists.\n",
    );
    for tool in ["iptables", "ip6tables"] {
        let _ = writeln!(
            out,
            "if {tool} -w -S DOCKER-USER >/dev/null 2>&1; then\n\
             \t{tool} -w -C DOCKER-USER {rule} 2>/dev/null || {tool} -w -I DOCKER-USER 1 {rule}\n\
             fi"
        );
    }
    out
}

/// The script that removes everything kws created (bridges carrying [`LINK_ALIAS`] among the
/// given state's, kws's table, the `DOCKER-USER` rule). Forwarding switches are left as they
/// are: other tools on the host may rely on them.
pub fn render_teardown(state: &HostNetState) -> String {
    let mut out = String::from("#!/bin/sh\n# kws-hostnet plan: remove what kws created.\n");
    let _ = writeln!(out, "nft list table {TABLE} >/dev/null 2>&1 && nft delete table {TABLE}");
    for bridge in &state.bridges {
        let _ = writeln!(out, "ip link delete dev {} type bridge", bridge.name);
    }
    let rule = DOCKER_USER_RULE.join(" ");
    for tool in ["iptables", "ip6tables"] {
        let _ = writeln!(
            out,
            "while {tool} -w -C DOCKER-USER {rule} 2>/dev/null; do {tool} -w -D DOCKER-USER {rule}; done"
        );
    }
    out
}
