//! Hostile input: each case gets a typed error and leaves nothing half-done (no lease, no row,
//! no interface peer). Run on embedded defaults and on PostgreSQL + a real wireguard-go.

mod common;

use std::sync::Arc;

use kws_ipam::MemoryAllocator;
use kws_wg::{
    DeviceRequest, Endpoint, Error, MemoryPeerStore, PostgresPeerStore, PrivateKey, UapiDevice,
    VpnService, VpnSettings, WireguardGo,
};

fn settings(interface: &str, subnet: &str) -> VpnSettings {
    VpnSettings::new(
        interface.parse().expect("interface"),
        PrivateKey::generate().expect("randomness"),
        Endpoint::parse("vpn.example.org:51820").expect("endpoint"),
        subnet.parse().expect("subnet"),
    )
    .expect("settings")
}

/// (leases, rows, interface peers) right now.
async fn footprint(vpn: &VpnService) -> (u128, usize, usize) {
    let usage = vpn.allocator().usage(&vpn.settings().pool_v4).await.expect("usage");
    let rows = vpn.store().list(&vpn.settings().interface).await.expect("list").len();
    let peers = vpn.device().get().await.expect("get").peers.len();
    (usage.allocated, rows, peers)
}

/// Every bad-input case, on a VPN whose subnet is a /29 (5 client addresses).
async fn every_bad_input_is_refused_cleanly(vpn: &VpnService) {
    vpn.reconcile().await.expect("reconcile");
    let good_key = PrivateKey::generate().expect("randomness").public_key();
    let first = vpn
        .add_device(
            DeviceRequest::parse("alice", "laptop", Some(&good_key.to_base64())).expect("ok"),
        )
        .await
        .expect("add_device");
    assert!(first.config.private_key.is_none(), "a supplied key's private half is unknown");
    let clean = footprint(vpn).await;
    assert_eq!(clean, (1, 1, 1));

    // A malformed key.
    let k = good_key.to_base64();
    for bad in [String::new(), format!("{k} "), format!("\n{k}"), k[..43].to_owned(), "x;y".into()]
    {
        let err = DeviceRequest::parse("alice", "phone", Some(&bad)).expect_err(&bad);
        assert!(matches!(err, Error::Key(_)), "{bad:?}: {err}");
    }

    // A name (or owner) that is not a DNS label.
    for bad in ["", "a b", "a;b", "-a", "a/..", "x\0y", "$(id)", "a'b", &"n".repeat(64), "a\nb"] {
        let err = DeviceRequest::parse("alice", bad, None).expect_err(bad);
        assert!(matches!(err, Error::Name(_)), "{bad:?}: {err}");
        let err = DeviceRequest::parse(bad, "phone", None).expect_err(bad);
        assert!(matches!(err, Error::Name(_)), "{bad:?}: {err}");
    }

    // A duplicate public key (another owner and name).
    let dup = DeviceRequest::parse("bob", "phone", Some(&good_key.to_base64())).expect("parse");
    let err = vpn.add_device(dup).await.expect_err("duplicate key accepted");
    assert!(matches!(err, Error::DuplicatePublicKey(k) if k == good_key), "{err}");
    assert_eq!(footprint(vpn).await, clean, "a duplicate key left something behind");

    // A duplicate name for the same owner.
    let err = vpn
        .add_device(DeviceRequest::parse("alice", "LAPTOP", None).expect("parse"))
        .await
        .expect_err("duplicate name accepted");
    assert!(matches!(err, Error::DuplicateName { .. }), "{err}");
    assert_eq!(footprint(vpn).await, clean, "a duplicate name left something behind");

    // An unknown peer.
    let unknown = PrivateKey::generate().expect("randomness").public_key();
    assert!(matches!(vpn.revoke(&unknown).await, Err(Error::PeerNotFound(k)) if k == unknown));
    assert!(matches!(vpn.enable(&unknown).await, Err(Error::PeerNotFound(_))));
    assert!(matches!(vpn.disable(&unknown).await, Err(Error::PeerNotFound(_))));
    assert_eq!(footprint(vpn).await, clean, "an unknown peer changed something");

    // An exhausted pool: a /29 has 5 client addresses (network, broadcast, server excluded).
    for i in 0..4 {
        let request = DeviceRequest::parse("carol", &format!("d{i}"), None).expect("parse");
        vpn.add_device(request).await.expect("within capacity");
    }
    let full = footprint(vpn).await;
    assert_eq!(full, (5, 5, 5));
    let err = vpn
        .add_device(DeviceRequest::parse("carol", "one-too-many", None).expect("parse"))
        .await
        .expect_err("an exhausted pool handed out an address");
    assert!(matches!(err, Error::PoolExhausted { .. }), "{err}");
    assert_eq!(footprint(vpn).await, full, "exhaustion left something behind");
    assert!(vpn.reconcile().await.expect("reconcile").is_noop(), "the interface matches the store");
}

#[tokio::test]
async fn bad_input_on_embedded_defaults() {
    let vpn = VpnService::embedded(settings("wg0", "10.8.0.0/29")).await.expect("embedded");
    every_bad_input_is_refused_cleanly(&vpn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_postgres_and_wireguard_go() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let Some(lab) = common::Lab::new() else { return };
    let store = PostgresPeerStore::connect(db.pool().await).await.expect("migrations");
    let s = settings(lab.server_if.as_str(), "10.8.0.0/29");
    let launcher = WireguardGo::new(lab.server_if.clone())
        .netns(lab.server.name().parse().expect("netns label"))
        .address(s.server_address_v4());
    let _running = launcher.start().await.expect("wireguard-go");
    let vpn = VpnService::new(
        s,
        Arc::new(MemoryAllocator::new()),
        Arc::new(store),
        Arc::new(UapiDevice::new(lab.server_if.clone())),
    )
    .expect("service");
    vpn.create_pools().await.expect("pools");
    every_bad_input_is_refused_cleanly(&vpn).await;
}

#[tokio::test]
async fn a_device_failure_leaves_no_lease_and_no_row() {
    // A UAPI socket nobody listens on: the last step of add_device fails.
    let s = settings("kwsnone0", "10.8.0.0/24");
    let absent =
        std::env::temp_dir().join(format!("kws-wg-{}.sock", kws_testenv::random_suffix(8)));
    let device = UapiDevice::with_socket(s.interface.clone(), absent);
    let vpn = VpnService::new(
        s,
        Arc::new(MemoryAllocator::new()),
        Arc::new(MemoryPeerStore::new()),
        Arc::new(device),
    )
    .expect("service");
    vpn.create_pools().await.expect("pools");
    let request = DeviceRequest::parse("alice", "laptop", None).expect("parse");
    let err = vpn.add_device(request.clone()).await.expect_err("device was unreachable");
    assert!(matches!(err, Error::DeviceIo { .. }), "{err}");
    let usage = vpn.allocator().usage(&vpn.settings().pool_v4).await.expect("usage");
    assert_eq!(usage.allocated, 0, "the lease was released");
    assert!(vpn.store().list(&vpn.settings().interface).await.expect("list").is_empty());
    // The name is free again: nothing half-done blocks a retry.
    assert!(vpn.store().find_by_name(&request.owner, &request.name).await.expect("find").is_none());
}
