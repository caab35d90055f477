//! Prints the commands (`ip`, `sysctl`, `nft`, `iptables`) that bring a host to a kws-hostnet
//! state, and changes nothing: the plan backend. With no argument it plans the router that was
//! once set up by hand (bridge vmbr1 192.168.69.1/29, IPv4 forwarding, masquerade out of eth0,
//! DNAT of tcp 443 and udp 51820 to 192.168.69.2); with a state file, that file.
//!
//! `cargo run --example hostnet_plan [STATE_FILE]`

use kws::hostnet::{HostNetState, HostNetwork, PlanHostNetwork};

const HAND_SETUP: &str = include_str!("../kws-hostnet/data/hand_setup.toml");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let state = match std::env::args().nth(1) {
        Some(path) => HostNetState::load(path.as_ref())?,
        None => HostNetState::from_toml(HAND_SETUP)?,
    };
    let network = PlanHostNetwork::new();
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let report = rt.block_on(network.apply(&state))?;
    for script in network.scripts() {
        print!("{script}");
    }
    eprintln!("# plan: {report:?} (nothing on this host was changed)");
    Ok(())
}
