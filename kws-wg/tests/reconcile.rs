//! `reconcile` against the in-memory interface (pure logic; the real-interface cases are in
//! tests/tunnel.rs): only the difference is applied, and a second run sends nothing.

use std::sync::Arc;

use kws_ipam::MemoryAllocator;
use kws_wg::{
    DeviceRequest, Endpoint, MemoryDevice, MemoryPeerStore, PresharedKey, PrivateKey, VpnService,
    VpnSettings, WgDevice, WgDeviceExt, device::PeerChange,
};

async fn service() -> (VpnService, Arc<MemoryDevice>) {
    let settings = VpnSettings::new(
        "wg0".parse().expect("interface"),
        PrivateKey::generate().expect("randomness"),
        Endpoint::parse("192.0.2.1:51820").expect("endpoint"),
        "10.8.0.0/24".parse().expect("subnet"),
    )
    .expect("settings");
    let device = Arc::new(MemoryDevice::new(settings.interface.clone()));
    let vpn = VpnService::new(
        settings,
        Arc::new(MemoryAllocator::new()),
        Arc::new(MemoryPeerStore::new()),
        device.clone(),
    )
    .expect("service");
    vpn.create_pools().await.expect("pools");
    (vpn, device)
}

#[tokio::test]
async fn reconcile_fills_an_empty_interface_then_has_nothing_to_do() {
    let (vpn, device) = service().await;
    let mut keys = Vec::new();
    for i in 0..20 {
        let d = vpn.add_device(DeviceRequest::parse("alice", &format!("d{i}"), None).expect("ok"));
        keys.push(d.await.expect("add").peer.public_key);
    }
    // The interface restarted empty (as after a crash of its process).
    device.replace_peers(&[]).await.expect("clear");
    let report = vpn.reconcile().await.expect("reconcile");
    assert!(report.configured, "the interface key and port were set");
    keys.sort();
    assert_eq!(report.added, keys);
    assert!(report.removed.is_empty() && report.updated.is_empty());

    let requests = device.requests();
    let again = vpn.reconcile().await.expect("reconcile");
    assert!(again.is_noop(), "{again:?}");
    assert_eq!(device.requests(), requests, "a no-change reconcile sent no request");
}

#[tokio::test]
async fn reconcile_fixes_only_the_drifted_peer() {
    let (vpn, device) = service().await;
    let a = vpn.add_device(DeviceRequest::parse("bob", "a", None).expect("ok")).await.expect("a");
    let b = vpn.add_device(DeviceRequest::parse("bob", "b", None).expect("ok")).await.expect("b");
    vpn.reconcile().await.expect("reconcile");

    // Someone widened a's allowed IPs and replaced b's preshared key by hand.
    let mut wide = a.peer.device_config();
    wide.allowed_ips.push("10.9.0.0/16".parse().expect("net"));
    let mut other_psk = b.peer.device_config();
    other_psk.preshared_key = Some(PresharedKey::generate().expect("randomness"));
    device.apply(&[PeerChange::Upsert(wide), PeerChange::Upsert(other_psk)]).await.expect("drift");

    let report = vpn.reconcile().await.expect("reconcile");
    let mut expected = vec![a.peer.public_key, b.peer.public_key];
    expected.sort();
    let mut updated = report.updated.clone();
    updated.sort();
    assert_eq!(updated, expected);
    assert!(report.added.is_empty() && report.removed.is_empty() && !report.configured);
    let state = device.get().await.expect("get");
    let a_now = state.peers.iter().find(|p| p.config.public_key == a.peer.public_key);
    assert_eq!(a_now.map(|p| p.config.allowed_ips.clone()), Some(a.peer.allowed_ips()));
    assert!(vpn.reconcile().await.expect("reconcile").is_noop());
}

#[tokio::test]
async fn disabled_peers_leave_and_come_back() {
    let (vpn, device) = service().await;
    let d = vpn.add_device(DeviceRequest::parse("carol", "x", None).expect("ok")).await.expect("x");
    let key = d.peer.public_key;
    vpn.disable(&key).await.expect("disable");
    vpn.disable(&key).await.expect("disable is idempotent");
    assert!(device.get().await.expect("get").peers.is_empty());
    // A stray re-add by hand is taken off again: the store says disabled.
    device.add_peer(d.peer.device_config()).await.expect("re-add");
    assert_eq!(vpn.reconcile().await.expect("reconcile").removed, vec![key]);
    vpn.enable(&key).await.expect("enable");
    assert_eq!(device.get().await.expect("get").peers.len(), 1);
    assert!(vpn.reconcile().await.expect("reconcile").is_noop());
}

#[tokio::test]
async fn the_qr_code_decodes_to_the_config_and_the_terminal_form_matches_it() {
    let (vpn, _device) = service().await;
    let d = vpn
        .add_device(DeviceRequest::parse("dora", "phone", None).expect("ok"))
        .await
        .expect("add");
    let text = d.config.render();
    let png_bytes = d.config.qr_png().expect("png");

    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut pixels).expect("frame");
    let (w, h) = (info.width as usize, info.height as usize);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| pixels[y * w + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the PNG");
    let (_meta, content) = grids[0].decode().expect("the QR code decodes");
    assert_eq!(content, text, "the QR code holds exactly the rendered config");

    // The terminal form draws the same modules: 8 PNG pixels per module, 2 modules per line.
    let term = d.config.qr_text().expect("text");
    let modules = w / 8;
    assert_eq!(term.lines().count(), modules.div_ceil(2));
    assert!(term.lines().all(|l| l.chars().count() == modules));
    let top_left_dark = pixels[4 * 8 * w + 4 * 8] == 0;
    let first_code_row = term.lines().nth(2).and_then(|l| l.chars().nth(4));
    assert!(top_left_dark, "the finder pattern starts after the quiet zone");
    assert_eq!(first_code_row, Some(' '), "dark modules are blank on a dark terminal");
}

#[tokio::test]
async fn the_reconcile_timer_takes_expired_peers_off() {
    let (vpn, device) = service().await;
    let vpn = Arc::new(vpn);
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(300);
    let request = DeviceRequest::parse("erin", "temp", None).expect("ok").expires_at(soon);
    let temp = vpn.add_device(request).await.expect("add");
    let keep = vpn.add_device(DeviceRequest::parse("erin", "keep", None).expect("ok")).await;
    let keep = keep.expect("add");
    assert_eq!(device.get().await.expect("get").peers.len(), 2);
    let _timer = vpn.reconcile_every(std::time::Duration::from_millis(100));
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    let left: Vec<_> =
        device.get().await.expect("get").peers.into_iter().map(|p| p.config.public_key).collect();
    assert_eq!(left, vec![keep.peer.public_key], "the expired peer left, the other stayed");
    assert!(vpn.store().get(&temp.peer.public_key).await.expect("get").is_some());
}

#[tokio::test]
async fn a_retried_add_device_reuses_the_lease_of_a_crashed_attempt() {
    let (vpn, device) = service().await;
    let request = DeviceRequest::parse("fred", "laptop", None).expect("ok");
    // A first attempt crashed right after allocating: the lease exists, nothing else does.
    let owner = vpn.lease_owner(&request.owner, &request.name).expect("lease owner");
    let pool = &vpn.settings().pool_v4;
    let crashed = vpn.allocator().allocate(pool, &owner).await.expect("allocate");
    let added = vpn.add_device(request).await.expect("the retry");
    assert_eq!(std::net::IpAddr::V4(added.peer.ipv4), crashed.addr, "same address");
    let usage = vpn.allocator().usage(pool).await.expect("usage");
    assert_eq!(usage.allocated, 1, "no second lease");
    assert_eq!(device.get().await.expect("get").peers.len(), 1);
}
