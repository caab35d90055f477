//! The checks of the suite.

use std::{collections::HashSet, net::IpAddr, time::Duration};

use super::{create, expect_err, ip, label, must_allocate, must_release, owner, spec};
use crate::{Error, Gateway, IpAllocator, Usage};

/// A /29 yields exactly its 5 usable addresses (network, gateway and broadcast reserved), then
/// `Exhausted`; usage counts them.
pub async fn slash29_yields_five_then_exhausted<A: IpAllocator + ?Sized>(a: &A) {
    let pool = create(a, spec("ck-29", "10.200.0.0/29")).await;
    let mut got = Vec::new();
    for i in 0..5 {
        got.push(must_allocate(a, &pool, &format!("o{i}")).await);
    }
    got.sort();
    let want: Vec<IpAddr> = (2..=6).map(|i| ip(&format!("10.200.0.{i}"))).collect();
    assert_eq!(got, want, "a /29 hands out .2 to .6");
    expect_err(
        a.allocate(&pool, &owner("o5")).await,
        "sixth allocation in a /29",
        |e| matches!(e, Error::Exhausted { pool: p } if *p == pool),
    );
    let usage = a.usage(&pool).await.expect("usage");
    assert_eq!(usage, Usage { capacity: 5, allocated: 5, free: 0 });
    must_release(a, &pool, want[2]).await;
    assert_eq!(must_allocate(a, &pool, "o5").await, want[2], "the freed address comes back");
}

/// A retried `allocate` returns the same lease; `lookup` and `lookup_owner` find it.
pub async fn allocate_is_idempotent<A: IpAllocator + ?Sized>(a: &A) {
    let pool = create(a, spec("ck-idem", "10.200.1.0/24")).await;
    let first = must_allocate(a, &pool, "peer-a").await;
    assert_eq!(must_allocate(a, &pool, "peer-a").await, first, "retry gives the same address");
    let other = must_allocate(a, &pool, "peer-b").await;
    assert_ne!(other, first);
    let lease = a.lookup(&pool, first).await.expect("lookup").expect("leased");
    assert_eq!(lease.owner, owner("peer-a"));
    let by_owner = a.lookup_owner(&pool, &owner("peer-b")).await.expect("lookup_owner");
    assert_eq!(by_owner.map(|l| l.addr), Some(other));
    assert_eq!(a.lookup_owner(&pool, &owner("nobody")).await.expect("lookup_owner"), None);
    assert_eq!(a.usage(&pool).await.expect("usage").allocated, 2);
    assert_eq!(a.lookup(&pool, ip("10.200.1.200")).await.expect("lookup"), None);
    assert_eq!(a.lookup(&pool, ip("10.200.1.1")).await.expect("lookup gateway"), None);
    expect_err(a.lookup(&pool, ip("10.9.9.9")).await, "lookup outside", |e| {
        matches!(e, Error::OutOfPool { .. })
    });
}

/// Releasing an address nobody holds is an error, every time; unknown pools are named.
pub async fn release_checks_the_holder<A: IpAllocator + ?Sized>(a: &A) {
    let pool = create(a, spec("ck-release", "10.200.2.0/24")).await;
    expect_err(
        a.release(&pool, ip("10.200.2.9")).await,
        "release never-allocated",
        |e| matches!(e, Error::NotAllocated { addr, .. } if *addr == ip("10.200.2.9")),
    );
    let addr = must_allocate(a, &pool, "x").await;
    let lease = a.release(&pool, addr).await.expect("release");
    assert_eq!((lease.addr, lease.owner), (addr, owner("x")), "release returns the ended lease");
    expect_err(a.release(&pool, addr).await, "double release", |e| {
        matches!(e, Error::NotAllocated { .. })
    });
    expect_err(a.release(&pool, ip("10.200.3.1")).await, "release outside", |e| {
        matches!(e, Error::OutOfPool { .. })
    });
    expect_err(a.release(&pool, ip("10.200.2.1")).await, "release of the gateway", |e| {
        matches!(e, Error::NotAllocated { .. })
    });
    let ghost = label("ck-no-such-pool");
    expect_err(
        a.allocate(&ghost, &owner("x")).await,
        "allocate in a missing pool",
        |e| matches!(e, Error::PoolNotFound(p) if *p == ghost),
    );
    expect_err(a.usage(&ghost).await, "usage of a missing pool", |e| {
        matches!(e, Error::PoolNotFound(_))
    });
    assert_eq!(a.usage(&pool).await.expect("usage").allocated, 0);
}

/// Released addresses come back oldest-released first, before fresh ones.
pub async fn reuse_is_fifo<A: IpAllocator + ?Sized>(a: &A) {
    let pool = create(a, spec("ck-fifo", "10.200.4.0/24")).await;
    let mut addrs = Vec::new();
    for i in 0..5 {
        addrs.push(must_allocate(a, &pool, &format!("f{i}")).await);
    }
    for i in [2, 0, 4, 1] {
        must_release(a, &pool, addrs[i]).await;
    }
    for (n, i) in [2, 0, 4, 1].into_iter().enumerate() {
        let got = must_allocate(a, &pool, &format!("g{n}")).await;
        assert_eq!(got, addrs[i], "reuse #{n} must be the {n}th released (FIFO, not LIFO)");
    }
    let fresh = must_allocate(a, &pool, "g-fresh").await;
    assert!(!addrs.contains(&fresh), "queue empty: a fresh address");
}

/// With a quarantine, a released address is not handed out again before it ends, even when the
/// pool has nothing else; then it comes back.
pub async fn quarantine_holds_back_released<A: IpAllocator + ?Sized>(a: &A) {
    let mut s = spec("ck-quarantine", "10.200.5.0/29");
    s.quarantine = Duration::from_millis(600);
    let pool = create(a, s).await;
    let mut held = Vec::new();
    for i in 0..5 {
        held.push(must_allocate(a, &pool, &format!("q{i}")).await);
    }
    must_release(a, &pool, held[1]).await;
    must_release(a, &pool, held[3]).await;
    expect_err(a.allocate(&pool, &owner("late")).await, "allocation during quarantine", |e| {
        matches!(e, Error::Exhausted { .. })
    });
    let usage = a.usage(&pool).await.expect("usage");
    assert_eq!((usage.allocated, usage.free), (3, 2), "quarantined addresses count as free");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(must_allocate(a, &pool, "late").await, held[1], "after quarantine, FIFO");
    assert_eq!(must_allocate(a, &pool, "later").await, held[3]);
}

/// IPv6 /64 and /120: addresses inside the prefix, network and gateway (`::1`) never handed
/// out, and a /120 yields exactly 254 addresses.
pub async fn ipv6_pools<A: IpAllocator + ?Sized>(a: &A) {
    let big = create(a, spec("ck-v6-64", "fd00:c0f:1::/64")).await;
    let net: ipnet::IpNet = "fd00:c0f:1::/64".parse().expect("prefix");
    let mut seen = HashSet::new();
    for i in 0..20 {
        let addr = must_allocate(a, &big, &format!("v{i}")).await;
        assert!(net.contains(&addr), "{addr} inside {net}");
        assert!(addr != ip("fd00:c0f:1::") && addr != ip("fd00:c0f:1::1"), "{addr} reserved");
        assert!(seen.insert(addr), "{addr} handed out twice");
    }
    let usage = a.usage(&big).await.expect("usage");
    assert_eq!(usage.capacity, (1u128 << 64) - 2);
    let top = ip("fd00:c0f:1:0:ffff:ffff:ffff:ffff");
    a.allocate_specific(&big, top, &owner("top")).await.expect("the last address of a /64");

    let small = create(a, spec("ck-v6-120", "fd00:c0f:2::/120")).await;
    let mut got = HashSet::new();
    for i in 0..254 {
        got.insert(must_allocate(a, &small, &format!("w{i}")).await);
    }
    assert_eq!(got.len(), 254, "254 distinct addresses in a /120");
    assert!(got.contains(&ip("fd00:c0f:2::ff")), "IPv6 has no broadcast address");
    expect_err(a.allocate(&small, &owner("w254")).await, "full /120", |e| {
        matches!(e, Error::Exhausted { .. })
    });
}

/// /31 and /32 (and /127, /128): every address usable (RFC 3021).
pub async fn point_to_point_pools<A: IpAllocator + ?Sized>(a: &A) {
    for (name, prefix, want) in [
        ("ck-31", "10.200.6.0/31", vec!["10.200.6.0", "10.200.6.1"]),
        ("ck-32", "10.200.6.7/32", vec!["10.200.6.7"]),
        ("ck-127", "fd00:c0f:3::/127", vec!["fd00:c0f:3::", "fd00:c0f:3::1"]),
        ("ck-128", "fd00:c0f:3::9/128", vec!["fd00:c0f:3::9"]),
    ] {
        let pool = create(a, spec(name, prefix)).await;
        let mut got = Vec::new();
        for i in 0..want.len() {
            got.push(must_allocate(a, &pool, &format!("p{i}")).await);
        }
        got.sort();
        let want: Vec<IpAddr> = want.into_iter().map(ip).collect();
        assert_eq!(got, want, "{prefix} hands out every address");
        expect_err(a.allocate(&pool, &owner("extra")).await, prefix, |e| {
            matches!(e, Error::Exhausted { .. })
        });
    }
}

/// `allocate_specific` takes exactly the address asked for, names the holder when taken,
/// refuses reserved and outside addresses, and a specific address above the cursor strands
/// nothing below it: the whole pool is still handed out, each address once.
pub async fn allocate_specific_keeps_the_cursor<A: IpAllocator + ?Sized>(a: &A) {
    let pool = create(a, spec("ck-specific", "10.200.7.0/28")).await;
    let top = ip("10.200.7.14");
    let lease = a.allocate_specific(&pool, top, &owner("static")).await.expect("specific");
    assert_eq!(lease.addr, top);
    let again = a.allocate_specific(&pool, top, &owner("static")).await.expect("retry");
    assert_eq!(again.addr, top, "idempotent for the same owner");
    expect_err(
        a.allocate_specific(&pool, top, &owner("thief")).await,
        "taken",
        |e| matches!(e, Error::AlreadyAllocated { holder, addr, .. } if holder.as_str() == "static" && *addr == top),
    );
    expect_err(a.allocate_specific(&pool, ip("10.200.7.1"), &owner("gw")).await, "gateway", |e| {
        matches!(e, Error::Reserved { .. })
    });
    expect_err(
        a.allocate_specific(&pool, ip("10.200.7.15"), &owner("b")).await,
        "broadcast",
        |e| matches!(e, Error::Reserved { .. }),
    );
    expect_err(a.allocate_specific(&pool, ip("10.200.8.3"), &owner("o")).await, "outside", |e| {
        matches!(e, Error::OutOfPool { .. })
    });
    expect_err(
        a.allocate_specific(&pool, ip("10.200.7.9"), &owner("static")).await,
        "second",
        |e| matches!(e, Error::OwnerHasLease { addr, .. } if *addr == top),
    );
    let mid = ip("10.200.7.8");
    a.allocate_specific(&pool, mid, &owner("mid")).await.expect("specific in the middle");
    let mut seen: HashSet<IpAddr> = [top, mid].into();
    // 13 usable (.2-.14); two taken: 11 more, each once, none stranded.
    for i in 0..11 {
        let addr = must_allocate(a, &pool, &format!("s{i}")).await;
        assert!(seen.insert(addr), "{addr} handed out twice");
    }
    expect_err(a.allocate(&pool, &owner("s11")).await, "full", |e| {
        matches!(e, Error::Exhausted { .. })
    });
    // A specific address taken out of the free queue is not handed out again from it.
    must_release(a, &pool, ip("10.200.7.5")).await;
    a.allocate_specific(&pool, ip("10.200.7.5"), &owner("s-again")).await.expect("from queue");
    expect_err(a.allocate(&pool, &owner("s12")).await, "queue entry consumed", |e| {
        matches!(e, Error::Exhausted { .. })
    });
}

/// Overlapping, duplicate and inconsistent pools are refused.
pub async fn pools_are_validated<A: IpAllocator + ?Sized>(a: &A) {
    create(a, spec("ck-valid", "10.200.16.0/20")).await;
    expect_err(
        a.create_pool(spec("ck-valid", "10.200.64.0/24")).await,
        "same name",
        |e| matches!(e, Error::PoolExists(n) if n.as_str() == "ck-valid"),
    );
    for (name, prefix) in [
        ("ck-inner", "10.200.17.0/24"),
        ("ck-outer", "10.200.0.0/16"),
        ("ck-hostbits", "10.200.99.1/24"),
    ] {
        expect_err(a.create_pool(spec(name, prefix)).await, prefix, |e| {
            matches!(e, Error::InvalidPool(_))
        });
        expect_err(a.usage(&label(name)).await, "refused pool left nothing", |e| {
            matches!(e, Error::PoolNotFound(_))
        });
    }
    let mut bad = spec("ck-badgw", "10.200.65.0/24");
    bad.gateway = Gateway::Address(ip("10.200.66.1"));
    expect_err(a.create_pool(bad).await, "gateway outside", |e| matches!(e, Error::InvalidPool(_)));
}

/// A configured gateway and reservations are never handed out.
pub async fn reservations_are_never_handed_out<A: IpAllocator + ?Sized>(a: &A) {
    let mut s = spec("ck-reserved", "10.200.9.0/28");
    s.gateway = Gateway::Address(ip("10.200.9.14"));
    s.reserved = vec![ip("10.200.9.3")..=ip("10.200.9.6"), ip("10.200.9.10")..=ip("10.200.9.10")];
    let pool = create(a, s).await;
    assert_eq!(a.usage(&pool).await.expect("usage").capacity, 8);
    let mut got = Vec::new();
    for i in 0..8 {
        got.push(must_allocate(a, &pool, &format!("r{i}")).await);
    }
    got.sort();
    let want: Vec<IpAddr> =
        [1, 2, 7, 8, 9, 11, 12, 13].iter().map(|i| ip(&format!("10.200.9.{i}"))).collect();
    assert_eq!(got, want);
    expect_err(a.allocate_specific(&pool, ip("10.200.9.4"), &owner("x")).await, "reserved", |e| {
        matches!(e, Error::Reserved { .. })
    });
}

/// Owner keys with quotes, separators, shell and SQL metacharacters, non-ASCII text and the
/// longest allowed length are stored and read back exactly; invalid keys are refused before
/// they reach a backend.
pub async fn hostile_owners_round_trip<A: IpAllocator + ?Sized>(a: &A) {
    let pool = create(a, spec("ck-hostile", "10.200.10.0/24")).await;
    let longest = "k".repeat(crate::LeaseOwner::MAX_LEN);
    let keys = [
        "'; DROP TABLE kws_ipam.leases; --",
        "a|1|0",
        "$(rm -rf /) `id` \"q\" \\ ..",
        "10.200.10.2",
        "ключ-пира ✓",
        "%x %n {}",
        longest.as_str(),
    ];
    for key in keys {
        let who = owner(key);
        let lease = a.allocate(&pool, &who).await.unwrap_or_else(|e| panic!("{key:?}: {e}"));
        let back = a.lookup(&pool, lease.addr).await.expect("lookup").map(|l| l.owner);
        assert_eq!(back, Some(who.clone()), "{key:?} read back");
        let by_owner = a.lookup_owner(&pool, &who).await.expect("lookup_owner");
        assert_eq!(by_owner.map(|l| l.addr), Some(lease.addr), "{key:?} by owner");
        let released = a.release(&pool, lease.addr).await.expect("release");
        assert_eq!(released.owner, who, "{key:?} released");
    }
    let too_long = "k".repeat(crate::LeaseOwner::MAX_LEN + 1);
    for bad in ["", "nul\0byte", "new\nline", too_long.as_str()] {
        assert!(
            matches!(crate::LeaseOwner::new(bad), Err(Error::InvalidArgument(_))),
            "{bad:?} must be refused"
        );
    }
}
