//! The embedded boringtun interface (feature `boringtun`) as the server end of a real tunnel,
//! driven through the same UAPI client; the client end is wireguard-go configured only from the
//! rendered wg-quick file.

mod common;

use std::{sync::Arc, time::Duration};

use common::{Lab, SERVER_VPN};
use kws_ipam::MemoryAllocator;
use kws_wg::{DeviceRequest, MemoryPeerStore, UapiDevice, VpnService, device::Boringtun};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boringtun_server_carries_ping_and_tcp_and_reconciles_like_wireguard_go() {
    let Some(mut lab) = Lab::new() else { return };
    let settings = lab.settings(false);
    let server = Boringtun::new(lab.server_if.clone())
        .netns(lab.server.name().parse().expect("netns label"))
        .address(settings.server_address_v4());
    let _running = server.start().await.expect("boringtun");
    let vpn = VpnService::new(
        settings,
        Arc::new(MemoryAllocator::new()),
        Arc::new(MemoryPeerStore::new()),
        Arc::new(UapiDevice::new(lab.server_if.clone())),
    )
    .expect("service");
    vpn.create_pools().await.expect("pools");
    let first = vpn.reconcile().await.expect("reconcile");
    assert!(first.configured, "the key and port were set on boringtun");

    let device = vpn
        .add_device(DeviceRequest::parse("alice", "laptop", None).expect("request"))
        .await
        .expect("add_device");
    let other = vpn
        .add_device(DeviceRequest::parse("bob", "phone", None).expect("request"))
        .await
        .expect("add_device");
    lab.start_client(&device.config.render());
    assert!(lab.ping_within(None, SERVER_VPN, Duration::from_secs(10)), "no ping via boringtun");
    let payload = b"through boringtun\n".repeat(500);
    assert_eq!(lab.tcp_echo(&payload), payload);

    let again = vpn.reconcile().await.expect("reconcile");
    assert!(again.is_noop(), "boringtun's get answer matches the store: {again:?}");
    let views = vpn.list().await.expect("list");
    let mine = views.iter().find(|v| v.peer.public_key == device.peer.public_key).expect("view");
    let age = mine.last_handshake.and_then(|t| t.elapsed().ok()).expect("a handshake time");
    assert!(age < Duration::from_secs(60), "boringtun's handshake age read as a time: {age:?}");
    assert!(mine.rx_bytes > payload.len() as u64);

    vpn.revoke(&other.peer.public_key).await.expect("revoke the other peer");
    assert!(lab.ping_once(None, SERVER_VPN), "revoking another peer leaves this one alone");
    vpn.revoke(&device.peer.public_key).await.expect("revoke");
    assert!(vpn.device().get().await.expect("get").peers.is_empty());
    assert!(lab.ping_blocked(None, SERVER_VPN, 3), "a revoked peer still gets through boringtun");
}
