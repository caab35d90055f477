//! kws-wg benches: `add_device` on embedded defaults, and reconcile of 10,000 peers into a real
//! wireguard-go interface (in a network namespace; skipped loudly without root/wireguard-go):
//! from empty, and when nothing changed.
//!
//! `cargo bench --bench wg --features wg,ipam`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use criterion::{Criterion, criterion_group, criterion_main};
use kws::{
    ipam::MemoryAllocator,
    wg::{
        DeviceRequest, Endpoint, MemoryDevice, MemoryPeerStore, PrivateKey, UapiDevice, VpnService,
        VpnSettings, WgDevice, WireguardGo,
    },
};
use tokio::runtime::Runtime;

const PEERS: usize = 10_000;

fn settings(interface: &str, subnet: &str) -> VpnSettings {
    VpnSettings::new(
        interface.parse().expect("interface"),
        PrivateKey::generate().expect("randomness"),
        Endpoint::parse("192.0.2.1:51820").expect("endpoint"),
        subnet.parse().expect("subnet"),
    )
    .expect("settings")
}

fn add_device(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let vpn = rt.block_on(VpnService::embedded(settings("wg0", "10.0.0.0/8"))).expect("vpn");
    let n = AtomicU64::new(0);
    c.bench_function("wg/add_device (embedded defaults)", |b| {
        b.to_async(&rt).iter(|| {
            let name = format!("d{}", n.fetch_add(1, Ordering::Relaxed));
            let request = DeviceRequest::parse("bench", &name, None).expect("request");
            let vpn = &vpn;
            async move { vpn.add_device(request).await.expect("add_device") }
        })
    });
}

fn reconcile_10k(c: &mut Criterion) {
    let Some(ns) = kws_testenv::Netns::new() else { return };
    let rt = Runtime::new().expect("runtime");
    let interface = format!("kwsb{}", kws_testenv::random_suffix(6));
    let s = settings(&interface, "10.8.0.0/16");
    let allocator = Arc::new(MemoryAllocator::new());
    let store = Arc::new(MemoryPeerStore::new());
    // Fill the store through a service on an in-memory interface: the real one starts empty.
    let filler = VpnService::new(
        s.clone(),
        allocator.clone(),
        store.clone(),
        Arc::new(MemoryDevice::new(s.interface.clone())),
    )
    .expect("filler");
    rt.block_on(async {
        filler.create_pools().await.expect("pools");
        for i in 0..PEERS {
            let request = DeviceRequest::parse("bench", &format!("p{i}"), None).expect("request");
            filler.add_device(request).await.expect("add_device");
        }
    });
    let launcher = WireguardGo::new(s.interface.clone())
        .netns(ns.name().parse().expect("netns label"))
        .address(s.server_address_v4());
    let running = rt.block_on(launcher.start()).expect("wireguard-go");
    let device = Arc::new(UapiDevice::new(s.interface.clone()));
    let vpn = VpnService::new(s, allocator, store, device.clone()).expect("vpn");

    let mut group = c.benchmark_group("wg/reconcile 10k peers (wireguard-go)");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("full, from an empty interface", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (vpn, device) = (&vpn, &device);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    device.replace_peers(&[]).await.expect("empty the interface");
                    let start = Instant::now();
                    let report = vpn.reconcile().await.expect("reconcile");
                    total += start.elapsed();
                    assert_eq!(report.added.len(), PEERS);
                }
                total
            }
        })
    });
    // The same 10,000 peers through the `wg` tool (the floor set by wireguard-go itself),
    // measured in the same run so that the ratio holds whatever the machine's load.
    let conf = std::env::temp_dir().join(format!("{interface}.conf"));
    let peers = rt.block_on(vpn.store().list(&vpn.settings().interface)).expect("list");
    std::fs::write(&conf, setconf_text(&peers)).expect("write the wg setconf file");
    let wg = |args: &[&str]| {
        let out = std::process::Command::new("wg").args(args).output().expect("run wg");
        assert!(out.status.success(), "wg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let conf_path = conf.to_str().expect("utf-8 path");
    group.bench_function("baseline: wg setconf, from an empty interface", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                rt.block_on(device.replace_peers(&[])).expect("empty the interface");
                let start = Instant::now();
                wg(&["setconf", &interface, conf_path]);
                total += start.elapsed();
            }
            total
        })
    });
    rt.block_on(vpn.reconcile()).expect("reconcile");
    group.bench_function("nothing changed", |b| {
        b.to_async(&rt).iter(|| async {
            let report = vpn.reconcile().await.expect("reconcile");
            assert!(report.is_noop());
        })
    });
    group
        .bench_function("baseline: wg show dump", |b| b.iter(|| wg(&["show", &interface, "dump"])));
    group.finish();
    let _ = std::fs::remove_file(&conf);
    drop(running);
    let _ = std::fs::remove_file(format!("/var/run/wireguard/{interface}.sock"));
}

/// The peers as a `wg setconf` file.
fn setconf_text(peers: &[kws::wg::Peer]) -> String {
    let mut text = String::new();
    for peer in peers {
        text.push_str(&format!("[Peer]\nPublicKey = {}\n", peer.public_key));
        if let Some(psk) = &peer.preshared_key {
            text.push_str(&format!("PresharedKey = {}\n", psk.to_base64()));
        }
        text.push_str(&format!("AllowedIPs = {}/32\n", peer.ipv4));
    }
    text
}

criterion_group!(benches, add_device, reconcile_10k);
criterion_main!(benches);
