//! The conformance suite and the flaw tests on `RedisAllocator`, against a real Redis.
#![cfg(feature = "redis")]

use kws_ipam::{IpAllocator, RedisAllocator, testkit};

async fn allocator() -> Option<(kws_testenv::TestRedis, RedisAllocator)> {
    let r = kws_testenv::redis().await?;
    let alloc = RedisAllocator::new(&r.client(), r.prefix()).await.expect("connect");
    Some((r, alloc))
}

#[tokio::test]
async fn conformance_direct() {
    let Some((_r, a)) = allocator().await else { return };
    testkit::run_all(&a).await;
}

#[tokio::test]
async fn conformance_boxed() {
    let Some((_r, a)) = allocator().await else { return };
    let boxed: Box<dyn IpAllocator> = Box::new(a);
    testkit::run_all(&*boxed).await;
}

async fn instances(r: &kws_testenv::TestRedis, n: usize) -> Vec<std::sync::Arc<dyn IpAllocator>> {
    let mut out: Vec<std::sync::Arc<dyn IpAllocator>> = Vec::new();
    for _ in 0..n {
        out.push(std::sync::Arc::new(
            RedisAllocator::new(&r.client(), r.prefix()).await.expect("connect"),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flaw1_concurrent_allocators_never_share_an_address() {
    let Some(r) = kws_testenv::redis().await else { return };
    testkit::concurrent_allocators_never_share(&instances(&r, 4).await, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flaw3_release_racing_allocation_never_requeues_a_leased_address() {
    let Some(r) = kws_testenv::redis().await else { return };
    testkit::release_racing_allocation(&instances(&r, 3).await, 150).await;
}

#[tokio::test]
async fn audit_accounts_for_every_address() {
    let Some((_r, a)) = allocator().await else { return };
    let pool = testkit::create(&a, testkit::spec("acct", "fd00:7::/120")).await;
    a.allocate_specific(&pool, testkit::ip("fd00:7::f0"), &testkit::owner("static"))
        .await
        .expect("specific");
    let mut held = Vec::new();
    for i in 0..40 {
        held.push(testkit::must_allocate(&a, &pool, &format!("o{i}")).await);
    }
    for addr in held.iter().step_by(4) {
        testkit::must_release(&a, &pool, *addr).await;
    }
    testkit::must_release(&a, &pool, testkit::ip("fd00:7::f0")).await;
    let audit = a.audit(&pool).await.expect("audit");
    assert_eq!(audit.problems(), Vec::<String>::new());
    assert_eq!((audit.leases.len(), audit.free.len()), (30, 11));
}
