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
