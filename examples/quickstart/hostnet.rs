//! kws-hostnet: the host router as a declared state. The plan backend shows the commands that
//! would bring a host there; nothing on this machine changes.

use kws::hostnet::{HostNetState, HostNetwork, PlanHostNetwork, StateError};

const HAND_SETUP: &str = include_str!("../../kws-hostnet/data/hand_setup.toml");

pub(crate) fn show() -> Result<(), Box<dyn std::error::Error>> {
    println!("== hostnet: a declarative host router (plan backend, changes nothing)");
    let state = HostNetState::from_toml(HAND_SETUP)?;
    let network = PlanHostNetwork::new();
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let first = rt.block_on(network.apply(&state))?;
    let second = rt.block_on(network.apply(&state))?;
    println!("   apply: {first:?}");
    println!("   apply again changes nothing: {}", second.changed_nothing());
    let script = network.scripts().concat();
    for line in script.lines().filter(|l| {
        l.starts_with("ip address") || l.starts_with("sysctl") || l.contains("elements")
    }) {
        println!("   | {}", line.trim());
    }
    let bad = HAND_SETUP.replace("destination = \"192.168.69.2\"", "destination = \"10.0.0.9\"");
    match HostNetState::from_toml(&bad) {
        Err(e @ StateError::DestinationOutsideSubnets { .. }) => println!("   refused: {e}"),
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }
    println!();
    Ok(())
}
