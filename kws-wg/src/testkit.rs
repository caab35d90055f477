//! The conformance suite every `PeerStore` backend runs (feature `testkit`), directly and
//! through `Box<dyn PeerStore>`. A third-party backend can run it too. Each check panics with a
//! message that names the broken rule.

use std::net::{Ipv4Addr, Ipv6Addr};

use chrono::{Duration, SubsecRound, Utc};
use kws_core::{DnsLabel, IfName, OwnerId};

use crate::{Error, Peer, PeerStore, PresharedKey, PrivateKey};

/// A peer with a fresh key: `owner`/`name` on `interface` at `10.77.x.y`.
///
/// # Panics
/// When the arguments are not valid names or randomness fails.
pub fn sample_peer(interface: &str, owner: &str, name: &str, host: u16) -> Peer {
    let [hi, lo] = host.to_be_bytes();
    Peer {
        public_key: PrivateKey::generate().expect("OS randomness").public_key(),
        interface: IfName::parse(interface).expect("interface name"),
        owner: OwnerId::parse(owner).expect("owner"),
        name: DnsLabel::parse(name).expect("name"),
        ipv4: Ipv4Addr::new(10, 77, hi, lo),
        ipv6: None,
        preshared_key: None,
        keepalive: None,
        // Stores keep microseconds (PostgreSQL): round so peers compare equal.
        created_at: Utc::now().trunc_subsecs(6),
        expires_at: None,
        enabled: true,
    }
}

/// Runs every check below.
pub async fn run_all(store: &dyn PeerStore) {
    round_trips_every_field(store).await;
    lists_per_interface_in_key_order(store).await;
    refuses_duplicates_and_keeps_nothing(store).await;
    allows_what_is_unique_elsewhere(store).await;
    removes_and_toggles(store).await;
    concurrent_inserts_of_one_address_have_one_winner(store).await;
}

/// Every field comes back as it went in.
pub async fn round_trips_every_field(store: &dyn PeerStore) {
    let mut peer = sample_peer("kit-rt", "alice", "phone", 2);
    peer.ipv6 = Some(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2));
    peer.preshared_key = Some(PresharedKey::generate().expect("OS randomness"));
    peer.keepalive = Some(25);
    peer.expires_at = Some(peer.created_at + Duration::hours(1));
    peer.enabled = false;
    store.insert(&peer).await.expect("insert");
    assert_eq!(store.get(&peer.public_key).await.expect("get"), Some(peer.clone()), "get");
    let by_name = store.find_by_name(&peer.owner, &peer.name).await.expect("find_by_name");
    assert_eq!(by_name, Some(peer.clone()), "find_by_name");
    let other = PrivateKey::generate().expect("OS randomness").public_key();
    assert_eq!(store.get(&other).await.expect("get"), None, "get of an unknown key");
}

/// `list` returns one interface's peers, ordered by public key.
pub async fn lists_per_interface_in_key_order(store: &dyn PeerStore) {
    let mut keys = Vec::new();
    for host in 10..20 {
        let peer = sample_peer("kit-list", "bob", &format!("dev{host}"), host);
        store.insert(&peer).await.expect("insert");
        keys.push(peer.public_key);
    }
    store.insert(&sample_peer("kit-list2", "bob", "elsewhere", 10)).await.expect("insert");
    keys.sort();
    let listed: Vec<_> = store
        .list(&IfName::parse("kit-list").expect("name"))
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.public_key)
        .collect();
    assert_eq!(listed, keys, "list: only this interface, in public-key order");
}

/// Duplicate key, address (v4 and v6) and name are refused with their own error, and the
/// refused peer is not stored in any part.
pub async fn refuses_duplicates_and_keeps_nothing(store: &dyn PeerStore) {
    let mut first = sample_peer("kit-dup", "carol", "laptop", 2);
    first.ipv6 = Some(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2));
    store.insert(&first).await.expect("insert");

    let mut same_key = sample_peer("kit-dup", "carol", "other", 3);
    same_key.public_key = first.public_key;
    let err = store.insert(&same_key).await.expect_err("duplicate public key accepted");
    assert!(matches!(err, Error::DuplicatePublicKey(k) if k == first.public_key), "{err}");

    let same_v4 = sample_peer("kit-dup", "carol", "tablet", 2);
    let err = store.insert(&same_v4).await.expect_err("duplicate IPv4 accepted");
    assert!(matches!(err, Error::DuplicateAddress { .. }), "{err}");
    assert_eq!(store.get(&same_v4.public_key).await.expect("get"), None, "half-stored");

    let mut same_v6 = sample_peer("kit-dup", "carol", "watch", 4);
    same_v6.ipv6 = first.ipv6;
    let err = store.insert(&same_v6).await.expect_err("duplicate IPv6 accepted");
    assert!(matches!(err, Error::DuplicateAddress { .. }), "{err}");

    let same_name = sample_peer("kit-dup2", "carol", "laptop", 5);
    let err = store.insert(&same_name).await.expect_err("duplicate owner/name accepted");
    assert!(matches!(err, Error::DuplicateName { .. }), "{err}");
    assert_eq!(store.get(&same_name.public_key).await.expect("get"), None, "half-stored");

    // The refused peers left nothing: their addresses and names are still free.
    let mut fresh = sample_peer("kit-dup", "carol", "tablet", 4);
    fresh.ipv6 = Some(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 4));
    store.insert(&fresh).await.expect("the refused peers left something behind");
    let listed = store.list(&first.interface).await.expect("list");
    assert_eq!(listed.len(), 2, "exactly the two accepted peers");
}

/// The same address on another interface, and the same name for another owner, are fine.
pub async fn allows_what_is_unique_elsewhere(store: &dyn PeerStore) {
    store.insert(&sample_peer("kit-a", "dave", "pc", 2)).await.expect("insert");
    store
        .insert(&sample_peer("kit-b", "dave", "pc2", 2))
        .await
        .expect("same address, other interface");
    store.insert(&sample_peer("kit-a", "erin", "pc", 3)).await.expect("same name, other owner");
}

/// `remove` and `set_enabled`: their results, idempotence and `PeerNotFound`.
pub async fn removes_and_toggles(store: &dyn PeerStore) {
    let peer = sample_peer("kit-rm", "frank", "phone", 2);
    store.insert(&peer).await.expect("insert");
    let off = store.set_enabled(&peer.public_key, false).await.expect("disable");
    assert!(!off.enabled, "set_enabled(false) returns the disabled peer");
    let again = store.set_enabled(&peer.public_key, false).await.expect("disable twice");
    assert_eq!(again, off, "set_enabled is idempotent");
    let removed = store.remove(&peer.public_key).await.expect("remove");
    assert_eq!(removed.public_key, peer.public_key);
    assert!(!removed.enabled);
    assert!(matches!(store.remove(&peer.public_key).await, Err(Error::PeerNotFound(_))));
    assert!(matches!(store.set_enabled(&peer.public_key, true).await, Err(Error::PeerNotFound(_))));
    // Its address and name are free again.
    store.insert(&sample_peer("kit-rm", "frank", "phone", 2)).await.expect("reuse after remove");
}

/// Many concurrent inserts of one address: exactly one is stored.
pub async fn concurrent_inserts_of_one_address_have_one_winner(store: &dyn PeerStore) {
    let peers: Vec<Peer> =
        (0..16).map(|i| sample_peer("kit-race", "gina", &format!("d{i}"), 9)).collect();
    let results = futures::future::join_all(peers.iter().map(|p| store.insert(p))).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "one address, one winner");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(matches!(r, Error::DuplicateAddress { .. }), "{r}");
    }
    let listed = store.list(&IfName::parse("kit-race").expect("name")).await.expect("list");
    assert_eq!(listed.len(), 1);
}
