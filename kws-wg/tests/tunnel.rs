//! Real tunnels: wireguard-go at both ends, in two network namespaces joined by veth. The
//! client is configured only from the wg-quick file the library rendered.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{Lab, SERVER_VPN};
use std::sync::Arc;

use kws_wg::{DeviceRequest, NewDevice, PublicKey, Supervisor, VpnService, WgDevice};

const FIRST_CONTACT: Duration = Duration::from_secs(10);

fn request(owner: &str, name: &str) -> DeviceRequest {
    DeviceRequest::parse(owner, name, None).expect("request")
}

/// A lab whose client is configured from `request`'s rendered config and has pinged the server.
async fn connected(
    request: DeviceRequest,
    every: Duration,
    v6: bool,
) -> Option<(Lab, Arc<VpnService>, Supervisor, NewDevice)> {
    let mut lab = Lab::new()?;
    let (vpn, supervisor) = lab.start_server(every, v6).await;
    let device = vpn.add_device(request).await.expect("add_device");
    lab.start_client(&device.config.render());
    assert!(lab.ping_within(None, SERVER_VPN, FIRST_CONTACT), "no ping through the tunnel");
    Some((lab, vpn, supervisor, device))
}

async fn on_interface(device: &dyn WgDevice, key: &PublicKey) -> bool {
    let state = device.get().await.expect("get");
    state.peers.iter().any(|p| &p.config.public_key == key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reaches_the_server_by_ping_and_tcp_over_ipv4_and_ipv6() {
    let every = Duration::from_secs(30);
    let Some((lab, vpn, _sup, device)) = connected(request("alice", "laptop"), every, true).await
    else {
        return;
    };
    let v6 = device.peer.ipv6.expect("an IPv6 address").to_string();
    assert!(device.config.render().contains(&format!("/32, {v6}/128")), "v4 and v6 addresses");
    assert!(lab.ping_within(Some(&v6), "fd08::1", FIRST_CONTACT), "no IPv6 ping");
    let payload = b"hello through the tunnel\n".repeat(1000);
    assert_eq!(lab.tcp_echo(&payload), payload, "TCP echo through the tunnel");

    let views = vpn.list().await.expect("list");
    assert_eq!(views.len(), 1);
    let view = &views[0];
    assert!(view.on_interface);
    assert!(view.last_handshake.is_some(), "list shows the live handshake");
    assert!(view.rx_bytes > payload.len() as u64, "list shows live counters: {view:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_peer_gets_nothing_through() {
    let every = Duration::from_secs(30);
    let Some((lab, vpn, _sup, device)) = connected(request("bob", "phone"), every, false).await
    else {
        return;
    };

    vpn.revoke(&device.peer.public_key).await.expect("revoke");
    assert!(!on_interface(vpn.device().as_ref(), &device.peer.public_key).await);
    assert!(lab.ping_blocked(None, SERVER_VPN, 3), "a revoked peer still gets through");
    assert!(vpn.store().get(&device.peer.public_key).await.expect("get").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_peer_leaves_the_interface_on_the_timer() {
    // The supervisor's timer reconciles every 500 ms: nobody calls reconcile by hand here.
    let every = Duration::from_millis(500);
    let expires = Utc::now() + chrono::Duration::seconds(5);
    let req = request("carol", "tablet").expires_at(expires);
    let Some((lab, vpn, _sup, device)) = connected(req, every, false).await else { return };

    let wait = (expires - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(1500);
    tokio::time::sleep(wait).await;
    assert!(!on_interface(vpn.device().as_ref(), &device.peer.public_key).await, "still on");
    assert!(lab.ping_blocked(None, SERVER_VPN, 3), "an expired peer still gets through");
    let stored = vpn.store().get(&device.peer.public_key).await.expect("get");
    assert!(stored.is_some(), "expiry keeps the row (the owner may renew it)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_interface_process_comes_back_with_every_peer() {
    let every = Duration::from_secs(30);
    let Some((lab, vpn, mut supervisor, _device)) =
        connected(request("dave", "desktop"), every, false).await
    else {
        return;
    };
    for i in 0..5 {
        vpn.add_device(request("dave", &format!("other{i}"))).await.expect("add_device");
    }

    let pid = supervisor.pid().expect("pid");
    let killed = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
    assert!(killed.expect("kill").success());
    assert!(supervisor.wait_starts(2, Duration::from_secs(20)).await, "never restarted");
    assert_ne!(supervisor.pid(), Some(pid), "a new process runs the interface");

    let state = vpn.device().get().await.expect("get");
    assert_eq!(state.peers.len(), 6, "reconcile restored every peer");
    // The client changes nothing: it re-handshakes on its own (up to REKEY + keepalive).
    assert!(
        lab.ping_within(None, SERVER_VPN, Duration::from_secs(45)),
        "the client never got through after the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_added_by_hand_is_removed_by_reconcile_and_nobody_else_is_touched() {
    let every = Duration::from_secs(30);
    let Some((lab, vpn, _sup, device)) = connected(request("erin", "laptop"), every, false).await
    else {
        return;
    };
    let before = vpn.device().get().await.expect("get");

    let intruder = kws_wg::PrivateKey::generate().expect("rng").public_key();
    let key = intruder.to_base64();
    lab.wg_by_hand(&["set", lab.server_if.as_str(), "peer", &key, "allowed-ips", "10.8.0.0/24"]);
    assert!(on_interface(vpn.device().as_ref(), &intruder).await, "the hand-added peer is there");

    let report = vpn.reconcile().await.expect("reconcile");
    assert_eq!(report.removed, vec![intruder]);
    assert!(report.added.is_empty() && report.updated.is_empty() && !report.configured);
    assert!(!on_interface(vpn.device().as_ref(), &intruder).await, "reconcile removed it");
    assert!(vpn.reconcile().await.expect("reconcile").is_noop(), "reconcile is idempotent");

    // The legitimate peer's session was not touched: same handshake, still passing traffic.
    let after = vpn.device().get().await.expect("get");
    let handshake = |s: &kws_wg::device::DeviceState| {
        s.peers
            .iter()
            .find(|p| p.config.public_key == device.peer.public_key)
            .map(|p| p.last_handshake)
    };
    assert_eq!(handshake(&after), handshake(&before), "the session was not reset");
    assert!(lab.ping_once(None, SERVER_VPN), "the legitimate peer still gets through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_spoofing_another_peers_address_gets_nothing_through() {
    let Some(mut lab) = Lab::new() else { return };
    let (vpn, _supervisor) = lab.start_server(Duration::from_secs(30), false).await;
    let mine = vpn.add_device(request("frank", "mine")).await.expect("add_device");
    let victim = vpn.add_device(request("gina", "victim")).await.expect("add_device");
    lab.start_client(&mine.config.render());
    let own = mine.peer.ipv4.to_string();
    let stolen = victim.peer.ipv4.to_string();
    assert!(lab.ping_within(Some(&own), SERVER_VPN, FIRST_CONTACT), "no ping from own address");

    lab.client.run(["ip", "address", "add", &format!("{stolen}/32"), "dev", &lab.client_if]);
    let rx_before = vpn.list().await.expect("list");
    assert!(lab.ping_blocked(Some(&stolen), SERVER_VPN, 3), "a spoofed source got through");
    assert!(lab.ping_once(Some(&own), SERVER_VPN), "the own address still works");
    let views = vpn.list().await.expect("list");
    let victim_view = views.iter().find(|v| v.peer.public_key == victim.peer.public_key);
    let before = rx_before.iter().find(|v| v.peer.public_key == victim.peer.public_key);
    assert_eq!(
        victim_view.map(|v| v.rx_bytes),
        before.map(|v| v.rx_bytes),
        "nothing was received on the victim's peer"
    );
}
