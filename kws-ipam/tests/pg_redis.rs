//! The conformance suite and the flaw tests on `PgRedisAllocator`, against a real PostgreSQL
//! and a real Redis.
#![cfg(all(feature = "postgres", feature = "redis"))]

use kws_ipam::{IpAllocator, PgRedisAllocator, testkit};

async fn allocator() -> Option<(kws_testenv::TestDb, kws_testenv::TestRedis, PgRedisAllocator)> {
    let db = kws_testenv::postgres().await?;
    let r = kws_testenv::redis().await?;
    let a = PgRedisAllocator::new(db.pool_with(16).await, &r.client(), r.prefix())
        .await
        .expect("connect");
    Some((db, r, a))
}

#[tokio::test]
async fn conformance_direct() {
    let Some((_db, _r, a)) = allocator().await else { return };
    testkit::run_all(&a).await;
}

#[tokio::test]
async fn conformance_boxed() {
    let Some((_db, _r, a)) = allocator().await else { return };
    let boxed: Box<dyn IpAllocator> = Box::new(a);
    testkit::run_all(&*boxed).await;
}
