//! `apply` of 1,000 port forwards in one batch, the same with 1,000 isolated owner bridges when
//! one owner comes or goes, and the re-apply of an unchanged state, by the Linux backend inside
//! a network namespace made for the bench.
//!
//! `cargo bench -p kws-hostnet --features linux --bench hostnet` (root; needs `ip netns`).

#![allow(missing_docs)] // criterion_group! generates an undocumented public function

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kws_hostnet::{HostNetState, HostNetwork, LinuxHostNetwork};

/// A bridge with a /16 behind it and `n` TCP forwards (ports 10000..) into it.
fn forwards(n: u32, destination_port: u16) -> HostNetState {
    let mut text = String::from(
        "forwarding = { ipv4 = true, ipv6 = false }\n[[bridges]]\nname = \"kwsbench0\"\naddresses = [\"10.64.0.1/16\"]\n[[masquerade]]\nsource = \"10.64.0.0/16\"\nout_interface = \"up0\"\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "[[port_forwards]]\nprotocol = \"tcp\"\nexternal_port = {}\ndestination = \"10.64.{}.{}\"\ndestination_port = {destination_port}\n",
            10_000 + i,
            i / 250,
            i % 250 + 2
        ));
    }
    HostNetState::from_toml(&text).expect("bench state")
}

/// `state` with `n` isolated bridges (`kwsb0a40xxxx`), as one per owner.
fn with_isolated_bridges(state: &HostNetState, n: u32) -> HostNetState {
    let mut spec = state.spec().clone();
    spec.isolated_bridges =
        (0..n).map(|i| format!("kwsb0a40{i:04x}").parse().expect("bridge name")).collect();
    HostNetState::new(spec).expect("bench state")
}

fn bench(c: &mut Criterion) {
    let Some(ns) = kws_testenv::Netns::new() else { return };
    let net = ns.enter(LinuxHostNetwork::new).expect("linux backend");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let (a, b) = (forwards(1000, 8080), forwards(1000, 8081));
    rt.block_on(net.apply(&a)).expect("warm-up apply");

    let mut group = c.benchmark_group("hostnet");
    group.sample_size(20).measurement_time(Duration::from_secs(8));
    // Alternating two states of 1,000 forwards each makes every iteration replace the table.
    let mut flip = false;
    group.bench_function("apply_1000_forwards", |bench| {
        bench.iter(|| {
            flip = !flip;
            let report = rt.block_on(net.apply(if flip { &b } else { &a })).expect("apply");
            assert!(report.netfilter_replaced);
        });
    });
    // One owner more, one owner fewer: the table (forwards and bridge sets) is replaced.
    let (owners, one_more) = (with_isolated_bridges(&a, 1000), with_isolated_bridges(&a, 1001));
    group.bench_function("apply_1000_forwards_1000_isolated_bridges", |bench| {
        bench.iter(|| {
            flip = !flip;
            let state = if flip { &one_more } else { &owners };
            let report = rt.block_on(net.apply(state)).expect("apply");
            assert!(report.netfilter_replaced);
        });
    });
    rt.block_on(net.apply(&a)).expect("apply a");
    group.bench_function("reapply_unchanged_1000_forwards", |bench| {
        bench.iter(|| {
            let report = rt.block_on(net.apply(&a)).expect("re-apply");
            assert!(report.changed_nothing());
        });
    });
    group.finish();
    rt.block_on(net.teardown()).expect("teardown");
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench
}
criterion_main!(benches);
