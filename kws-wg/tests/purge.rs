//! `purge_device` takes back whatever an interrupted add left, step by step, on embedded
//! defaults and on PostgreSQL + a real wireguard-go interface.

mod common;

use std::sync::Arc;

use kws_ipam::MemoryAllocator;
use kws_wg::{
    DeviceRequest, Endpoint, PostgresPeerStore, PrivateKey, UapiDevice, VpnService, VpnSettings,
    WireguardGo,
};

fn settings(interface: &str) -> VpnSettings {
    let mut s = VpnSettings::new(
        interface.parse().expect("interface"),
        PrivateKey::generate().expect("randomness"),
        Endpoint::parse("vpn.example.org:51820").expect("endpoint"),
        "10.8.0.0/24".parse().expect("subnet"),
    )
    .expect("settings");
    s.subnet_v6 = Some("fd00:8::/120".parse().expect("subnet"));
    s
}

/// (v4 leases, v6 leases, rows, interface peers).
async fn footprint(vpn: &VpnService) -> (u128, u128, usize, usize) {
    let s = vpn.settings();
    let v4 = vpn.allocator().usage(&s.pool_v4).await.expect("usage").allocated;
    let v6 = vpn.allocator().usage(&s.pool_v6).await.expect("usage").allocated;
    let rows = vpn.store().list(&s.interface).await.expect("list").len();
    let peers = vpn.device().get().await.expect("get").peers.len();
    (v4, v6, rows, peers)
}

/// Stops an add after each of its steps, then purges: nothing is left, and a second purge finds
/// nothing.
async fn purge_after_each_step(vpn: &VpnService) {
    vpn.reconcile().await.expect("reconcile");
    let request = DeviceRequest::parse("alice", "laptop", None).expect("request");
    let key = PrivateKey::generate().expect("randomness").public_key();
    for steps in 1..=3 {
        let leases = vpn.lease_addresses(&request.owner, &request.name).await.expect("lease");
        assert_eq!(leases.len(), 2, "one v4 and one v6 lease");
        let again = vpn.lease_addresses(&request.owner, &request.name).await.expect("lease");
        assert_eq!(again, leases, "leasing is idempotent");
        let peer = vpn.new_peer(&request, key, &leases).expect("peer");
        if steps >= 2 {
            vpn.store().insert(&peer).await.expect("insert");
        }
        if steps >= 3 {
            vpn.attach(&peer).await.expect("attach");
        }
        let want = (1, 1, usize::from(steps >= 2), usize::from(steps >= 3));
        assert_eq!(footprint(vpn).await, want, "after {steps} steps");
        // A crash after the interface step but before the row's removal in a revoke: the
        // interface peer is found by the key even when the row is gone.
        let key_only = steps == 3;
        if key_only {
            vpn.store().remove(&key).await.expect("remove row");
        }
        let purged =
            vpn.purge_device(&request.owner, &request.name, Some(key)).await.expect("purge");
        assert!(purged.found_anything());
        assert_eq!(purged.leases, 2, "{purged:?}");
        assert_eq!(footprint(vpn).await, (0, 0, 0, 0), "nothing left after {steps} steps");
        let again =
            vpn.purge_device(&request.owner, &request.name, Some(key)).await.expect("purge");
        assert!(!again.found_anything(), "a second purge finds nothing: {again:?}");
    }
    // A full add, then a purge by name alone.
    let added = vpn.add_device(request.clone()).await.expect("add");
    assert_eq!(footprint(vpn).await, (1, 1, 1, 1));
    vpn.purge_device(&request.owner, &request.name, None).await.expect("purge");
    assert_eq!(footprint(vpn).await, (0, 0, 0, 0));
    assert!(
        vpn.device()
            .get()
            .await
            .expect("get")
            .peers
            .iter()
            .all(|p| { p.config.public_key != added.peer.public_key })
    );
    assert!(vpn.reconcile().await.expect("reconcile").is_noop());
}

#[tokio::test]
async fn purge_on_embedded_defaults() {
    let vpn = VpnService::embedded(settings("wg0")).await.expect("embedded");
    purge_after_each_step(&vpn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_on_postgres_and_wireguard_go() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let Some(lab) = common::Lab::new() else { return };
    let store = PostgresPeerStore::connect(db.pool().await).await.expect("migrations");
    let s = settings(lab.server_if.as_str());
    let launcher = WireguardGo::new(lab.server_if.clone())
        .netns(lab.server.name().parse().expect("netns label"))
        .address(s.server_address_v4());
    let _running = launcher.start().await.expect("wireguard-go");
    let device = UapiDevice::new(lab.server_if.clone());
    let vpn =
        VpnService::new(s, Arc::new(MemoryAllocator::new()), Arc::new(store), Arc::new(device))
            .expect("service");
    vpn.create_pools().await.expect("pools");
    purge_after_each_step(&vpn).await;
    // The interface really is empty.
    assert!(vpn.device().get().await.expect("get").peers.is_empty());
}
