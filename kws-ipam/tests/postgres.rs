//! The conformance suite and the flaw tests on `PostgresAllocator`, against a real PostgreSQL.
#![cfg(feature = "postgres")]

use kws_ipam::{IpAllocator, PostgresAllocator, testkit};

async fn allocator() -> Option<(kws_testenv::TestDb, PostgresAllocator)> {
    let db = kws_testenv::postgres().await?;
    let alloc = PostgresAllocator::new(db.pool_with(16).await).await.expect("migrations");
    Some((db, alloc))
}

#[tokio::test]
async fn conformance_direct() {
    let Some((_db, a)) = allocator().await else { return };
    testkit::run_all(&a).await;
}

#[tokio::test]
async fn conformance_boxed() {
    let Some((_db, a)) = allocator().await else { return };
    let boxed: Box<dyn IpAllocator> = Box::new(a);
    testkit::run_all(&*boxed).await;
}

async fn instances(db: &kws_testenv::TestDb, n: usize) -> Vec<std::sync::Arc<dyn IpAllocator>> {
    let mut out: Vec<std::sync::Arc<dyn IpAllocator>> = Vec::new();
    for _ in 0..n {
        out.push(std::sync::Arc::new(
            PostgresAllocator::new(db.pool_with(4).await).await.expect("migrations"),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flaw1_concurrent_allocators_never_share_an_address() {
    let Some(db) = kws_testenv::postgres().await else { return };
    testkit::concurrent_allocators_never_share(&instances(&db, 4).await, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flaw3_release_racing_allocation_never_requeues_a_leased_address() {
    let Some(db) = kws_testenv::postgres().await else { return };
    testkit::release_racing_allocation(&instances(&db, 3).await, 100).await;
}

#[tokio::test]
async fn audit_accounts_for_every_address() {
    let Some((_db, a)) = allocator().await else { return };
    let pool = testkit::create(&a, testkit::spec("acct", "10.7.0.0/24")).await;
    a.allocate_specific(&pool, testkit::ip("10.7.0.200"), &testkit::owner("static"))
        .await
        .expect("specific");
    let mut held = Vec::new();
    for i in 0..100 {
        held.push(testkit::must_allocate(&a, &pool, &format!("o{i}")).await);
    }
    for addr in held.iter().step_by(4) {
        testkit::must_release(&a, &pool, *addr).await;
    }
    testkit::must_release(&a, &pool, testkit::ip("10.7.0.200")).await;
    let audit = a.audit(&pool).await.expect("audit");
    assert_eq!(audit.problems(), Vec::<String>::new());
    assert_eq!(audit.leases.len(), 75);
    // One refill chunk (1,024) covers the whole /24: every usable address not leased is free
    // (25 released, the static one, and the 252 - 100 fresh ones never handed out).
    assert_eq!(audit.free.len(), 25 + 1 + 152);
    assert_eq!(audit.free.len() + audit.leases.len(), 253, "nothing lost");
}
