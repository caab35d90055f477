//! A conformance suite every [`HostNetwork`] backend's tests call, once directly and once
//! through `Box<dyn HostNetwork>` / `Arc<dyn HostNetwork>`.
//!
//! The checks change the host: call them on a backend that acts on a disposable network
//! namespace (or on the plan backend).

use crate::{HostNetSpec, HostNetState, HostNetwork};

/// `state` with every list sorted and peers without destinations dropped: the form in which a
/// declared state and a read-back state are compared (order carries no meaning).
pub fn normalized(state: &HostNetState) -> HostNetSpec {
    let mut spec = state.spec().clone();
    for bridge in &mut spec.bridges {
        bridge.addresses.sort();
    }
    spec.bridges.sort_by(|a, b| a.name.cmp(&b.name));
    spec.masquerade.sort_by(|a, b| (a.source, &a.out_interface).cmp(&(b.source, &b.out_interface)));
    spec.port_forwards.sort_by_key(|f| (f.protocol, f.external_port, f.in_interface.clone()));
    spec.isolated_bridges.sort();
    if let Some(iso) = &mut spec.isolation {
        iso.peers.retain(|p| !p.allowed.is_empty());
        for peer in &mut iso.peers {
            peer.allowed.sort();
        }
        iso.peers.sort_by_key(|p| p.address);
    }
    spec
}

/// Apply, read back, re-apply (no change), then teardown (nothing managed left).
///
/// # Panics
/// When the backend breaks its contract.
pub async fn apply_read_reapply_teardown(network: &dyn HostNetwork, desired: &HostNetState) {
    let first = network.apply(desired).await.expect("first apply");
    assert!(
        !first.changed_nothing() || *desired == HostNetState::empty(),
        "first apply: {first:?}"
    );
    let back = network.current().await.expect("current after apply");
    assert_eq!(normalized(&back), normalized(desired), "current() must read the state back");
    let second = network.apply(desired).await.expect("second apply");
    assert!(second.changed_nothing(), "second apply of the same state changed: {second:?}");
    network.teardown().await.expect("teardown");
    let after = network.current().await.expect("current after teardown");
    assert!(after.bridges.is_empty(), "bridges left after teardown: {:?}", after.bridges);
    assert!(after.masquerade.is_empty() && after.port_forwards.is_empty());
    assert!(after.isolation.is_none(), "isolation left after teardown");
    assert!(after.isolated_bridges.is_empty(), "isolated bridges left after teardown");
}

/// Applying a changed state converges to it: removed items go, added items come.
///
/// # Panics
/// When the backend breaks its contract.
pub async fn apply_converges_on_change(
    network: &dyn HostNetwork,
    first: &HostNetState,
    second: &HostNetState,
) {
    network.apply(first).await.expect("apply first");
    let report = network.apply(second).await.expect("apply second");
    assert!(!report.changed_nothing() || first == second, "a changed state changed nothing");
    let back = network.current().await.expect("current");
    assert_eq!(normalized(&back), normalized(second), "current() after a change");
    network.teardown().await.expect("teardown");
}
