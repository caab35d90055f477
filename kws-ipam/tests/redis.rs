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
