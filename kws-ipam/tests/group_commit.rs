//! Group commit on Redis and PostgreSQL: concurrent calls on one instance share a script call
//! or a transaction, and each keeps its own outcome (a failing operation neither fails nor
//! undoes the others in its batch).
#![cfg(all(feature = "postgres", feature = "redis"))]

use std::{collections::HashSet, net::IpAddr, sync::Arc};

use futures::future::join_all;
use kws_ipam::{Error, IpAllocator, Lease, PostgresAllocator, RedisAllocator, Usage, testkit};
use testkit::{create, ip, owner, spec};

/// What one concurrent call did.
#[derive(Debug)]
enum Call {
    Allocate(Result<Lease, Error>),
    Release(IpAddr, Result<Lease, Error>),
    Specific(Result<Lease, Error>),
    Again(Result<Lease, Error>),
}

/// 40 allocations, 10 releases of addresses nobody holds, 5 `allocate_specific` of a held
/// address and 3 allocations of one owner, all at once on `a`; `counts` reads the batches and
/// operations the instance ran.
async fn mixed_batch(a: Arc<dyn IpAllocator>, counts: impl Fn() -> (u64, u64)) {
    let pool = create(&*a, spec("gc", "10.210.0.0/24")).await;
    a.allocate_specific(&pool, ip("10.210.0.100"), &owner("static")).await.expect("specific");
    let before = counts();
    let mut calls: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = Call> + Send>>> =
        Vec::new();
    for i in 0..40 {
        let (b, p) = (a.clone(), pool.clone());
        calls.push(Box::pin(async move {
            Call::Allocate(b.allocate(&p, &owner(&format!("o{i}"))).await)
        }));
        if i % 4 == 0 {
            let (b, p) = (a.clone(), pool.clone());
            let addr = ip(&format!("10.210.0.{}", 200 + i / 4));
            calls.push(Box::pin(async move { Call::Release(addr, b.release(&p, addr).await) }));
        }
        if i % 8 == 0 {
            let (b, p) = (a.clone(), pool.clone());
            let y = owner(&format!("y{i}"));
            calls.push(Box::pin(async move {
                Call::Specific(b.allocate_specific(&p, ip("10.210.0.100"), &y).await)
            }));
        }
        if i % 16 == 0 {
            let (b, p) = (a.clone(), pool.clone());
            calls.push(Box::pin(async move { Call::Again(b.allocate(&p, &owner("dup")).await) }));
        }
    }
    let n = calls.len() as u64;
    let outcomes = join_all(calls).await;
    let (batches, ops) = {
        let after = counts();
        (after.0 - before.0, after.1 - before.1)
    };
    // PostgreSQL runs an allocation again after refilling its fresh addresses.
    assert!(ops >= n, "every call went through the group commit: {ops} operations");
    assert!(batches * 4 <= ops, "{ops} operations of {n} concurrent calls in {batches} batches");
    let mut granted = HashSet::new();
    let mut dup = HashSet::new();
    for call in outcomes {
        match call {
            Call::Allocate(Ok(l)) => assert!(granted.insert(l.addr), "{} granted twice", l.addr),
            Call::Release(addr, r) => testkit::expect_err(
                r,
                "release of a free address",
                |e| matches!(e, Error::NotAllocated { addr: x, .. } if *x == addr),
            ),
            Call::Specific(r) => testkit::expect_err(
                r,
                "specific of a held address",
                |e| matches!(e, Error::AlreadyAllocated { holder, .. } if *holder == owner("static")),
            ),
            Call::Again(Ok(l)) => {
                dup.insert(l.addr);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(granted.len(), 40);
    assert_eq!(dup.len(), 1, "one owner, one address, however many calls: {dup:?}");
    assert!(granted.is_disjoint(&dup) && !granted.contains(&ip("10.210.0.100")));
    assert_eq!(
        a.usage(&pool).await.expect("usage"),
        Usage { capacity: 253, allocated: 42, free: 211 }
    );
    for addr in &granted {
        let lease = a.lookup(&pool, *addr).await.expect("lookup").expect("leased");
        assert!(lease.owner.as_str().starts_with('o'), "{lease:?}");
    }
}

#[tokio::test]
async fn postgres_batches_keep_each_outcome() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let a = PostgresAllocator::new(db.pool_with(4).await).await.expect("migrations");
    let a = a.with_group_commit(64, 1);
    assert_eq!(a.group_commit(), (64, 1));
    let counted = a.clone();
    mixed_batch(Arc::new(a), move || counted.group_commit_counts()).await;
}

#[tokio::test]
async fn redis_batches_keep_each_outcome() {
    let Some(r) = kws_testenv::redis().await else { return };
    let a = RedisAllocator::new(&r.client(), r.prefix()).await.expect("connect");
    let a = a.with_group_commit(64, 1);
    assert_eq!(a.group_commit(), (64, 1));
    let counted = a.clone();
    mixed_batch(Arc::new(a), move || counted.group_commit_counts()).await;
}

/// With coalescing off (one operation per call), the same calls give the same outcomes.
#[tokio::test]
async fn postgres_without_coalescing_behaves_the_same() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let a = PostgresAllocator::new(db.pool_with(4).await).await.expect("migrations");
    let a = a.with_group_commit(1, 64);
    let counted = a.clone();
    // 58 calls, each its own transaction: the batch bound does not hold, so check the rest.
    let pool = create(&a, spec("gc-off", "10.210.1.0/24")).await;
    let got = join_all((0..20).map(|i| {
        let (a, pool) = (a.clone(), pool.clone());
        async move { a.allocate(&pool, &owner(&format!("o{i}"))).await.expect("allocate").addr }
    }))
    .await;
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), 20);
    let (batches, ops) = counted.group_commit_counts();
    assert_eq!(batches, ops, "one operation per transaction");
}
