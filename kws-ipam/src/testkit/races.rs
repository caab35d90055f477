//! Checks under concurrency: several allocator instances (each its own connections, as
//! separate processes would have) working one pool at once.

use std::{collections::HashSet, net::IpAddr, sync::Arc};

use kws_core::DnsLabel;

use super::{create, owner, spec};
use crate::{Error, IpAllocator};

/// Flaw 1 of the original design (two allocators reading the same maximum hand out the same
/// address): `instances.len()` allocators x `tasks` tasks each allocate until the /22 pool
/// is exhausted. Every grant must be distinct, and together they must be the whole pool.
pub async fn concurrent_allocators_never_share(instances: &[Arc<dyn IpAllocator>], tasks: usize) {
    let Some(first) = instances.first() else { panic!("no allocator instances") };
    let pool = create(&**first, spec("race-unique", "10.201.0.0/22")).await;
    let mut handles = Vec::new();
    for (i, alloc) in instances.iter().enumerate() {
        for t in 0..tasks {
            let (alloc, pool) = (alloc.clone(), pool.clone());
            handles.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for n in 0.. {
                    match alloc.allocate(&pool, &owner(&format!("i{i}-t{t}-{n}"))).await {
                        Ok(lease) => got.push(lease.addr),
                        Err(Error::Exhausted { .. }) => break,
                        Err(e) => panic!("allocate: {e}"),
                    }
                }
                got
            }));
        }
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap_or_else(|e| panic!("task: {e}")));
    }
    let distinct: HashSet<IpAddr> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "{} duplicate grants", all.len() - distinct.len());
    assert_eq!(all.len(), 1021, "every usable address of the /22, once");
}

/// Flaw 3 of the original design (a release racing an allocation puts an address that is in
/// use back on the free queue): rounds of `release(a)`, `allocate_specific(a)` and
/// `allocate` run at once from different instances. At most one of them may end up holding
/// `a`, lookups must agree, and when all is released the pool must hand out each address
/// exactly once (a leased address left in the queue would come out twice).
pub async fn release_racing_allocation(instances: &[Arc<dyn IpAllocator>], rounds: usize) {
    let n = instances.len();
    assert!(n >= 3, "needs three allocator instances");
    let pool = create(&*instances[0], spec("race-release", "10.201.8.0/27")).await;
    let a0 = &instances[0];
    for r in 0..rounds {
        let x = owner(&format!("x{r}"));
        let addr = a0.allocate(&pool, &x).await.unwrap_or_else(|e| panic!("setup: {e}")).addr;
        let (p1, p2, p3) = (pool.clone(), pool.clone(), pool.clone());
        let (i1, i2, i3) = (
            instances[r % n].clone(),
            instances[(r + 1) % n].clone(),
            instances[(r + 2) % n].clone(),
        );
        let release = tokio::spawn(async move { i1.release(&p1, addr).await });
        let y = owner(&format!("y{r}"));
        let specific = tokio::spawn(async move { i2.allocate_specific(&p2, addr, &y).await });
        let z = owner(&format!("z{r}"));
        let any = tokio::spawn(async move { i3.allocate(&p3, &z).await });
        let released = release.await.unwrap_or_else(|e| panic!("task: {e}"));
        released.unwrap_or_else(|e| panic!("round {r}: release of a held address: {e}"));
        let specific = specific.await.unwrap_or_else(|e| panic!("task: {e}"));
        let any = any.await.unwrap_or_else(|e| panic!("task: {e}"));
        let mut holders = Vec::new();
        match &specific {
            Ok(l) => holders.push(l.owner.clone()),
            Err(Error::AlreadyAllocated { .. }) => {}
            Err(e) => panic!("round {r}: allocate_specific: {e}"),
        }
        let any = any.unwrap_or_else(|e| panic!("round {r}: allocate: {e}"));
        if any.addr == addr {
            holders.push(any.owner.clone());
        }
        assert!(holders.len() <= 1, "round {r}: {addr} held by {holders:?} at once");
        let now = a0.lookup(&pool, addr).await.unwrap_or_else(|e| panic!("lookup: {e}"));
        let by_lookup: Vec<_> = now.iter().map(|l| l.owner.clone()).collect();
        assert_eq!(holders, by_lookup, "round {r}: lookup disagrees about {addr}");
        // Hand everything back.
        if let Ok(l) = specific {
            a0.release(&pool, l.addr).await.unwrap_or_else(|e| panic!("cleanup: {e}"));
        }
        a0.release(&pool, any.addr).await.unwrap_or_else(|e| panic!("cleanup: {e}"));
    }
    drain_exactly(&**a0, &pool, 29).await;
}

/// Allocates `pool` until `Exhausted`, checking each address comes out once and that there
/// are exactly `capacity` of them.
pub async fn drain_exactly<A: IpAllocator + ?Sized>(a: &A, pool: &DnsLabel, capacity: usize) {
    let mut seen = HashSet::new();
    for i in 0.. {
        match a.allocate(pool, &owner(&format!("drain-{i}"))).await {
            Ok(l) => assert!(seen.insert(l.addr), "{} handed out twice while draining", l.addr),
            Err(Error::Exhausted { .. }) => break,
            Err(e) => panic!("drain: {e}"),
        }
    }
    assert_eq!(seen.len(), capacity, "drained addresses of {pool}");
}
