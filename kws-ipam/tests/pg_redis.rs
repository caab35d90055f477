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

use kws_ipam::Error;
use testkit::{create, must_allocate, must_release, owner, spec};

async fn instances(
    db: &kws_testenv::TestDb,
    r: &kws_testenv::TestRedis,
    n: usize,
) -> Vec<std::sync::Arc<dyn IpAllocator>> {
    let mut out: Vec<std::sync::Arc<dyn IpAllocator>> = Vec::new();
    for _ in 0..n {
        let a = PgRedisAllocator::new(db.pool_with(4).await, &r.client(), r.prefix()).await;
        out.push(std::sync::Arc::new(a.expect("connect")));
    }
    out
}

async fn raw_lpop(r: &kws_testenv::TestRedis, key: &str) -> Option<String> {
    let mut c = r.client().get_multiplexed_async_connection().await.expect("redis");
    redis::cmd("LPOP").arg(key).query_async(&mut c).await.expect("LPOP")
}

async fn raw_rpush(r: &kws_testenv::TestRedis, key: &str, entry: &str) {
    let mut c = r.client().get_multiplexed_async_connection().await.expect("redis");
    redis::cmd("RPUSH").arg(key).arg(entry).query_async::<i64>(&mut c).await.expect("RPUSH");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flaw1_concurrent_allocators_never_share_an_address() {
    let Some((db, r, _a)) = allocator().await else { return };
    testkit::concurrent_allocators_never_share(&instances(&db, &r, 4).await, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flaw3_release_racing_allocation_never_requeues_a_leased_address() {
    let Some((db, r, _a)) = allocator().await else { return };
    testkit::release_racing_allocation(&instances(&db, &r, 3).await, 100).await;
}

/// A process that popped an address from Redis and died before its PostgreSQL transaction
/// does not leak it: the address never left the PostgreSQL free queue.
#[tokio::test]
async fn flaw2_crash_between_redis_pop_and_insert_leaks_nothing() {
    let Some((_db, r, a)) = allocator().await else { return };
    let pool = create(&a, spec("crash-pop", "10.3.0.0/29")).await;
    let held: Vec<_> = futures::future::join_all((0..5).map(|i| {
        let a = &a;
        let pool = &pool;
        async move { must_allocate(a, pool, &format!("o{i}")).await }
    }))
    .await;
    must_release(&a, &pool, held[0]).await;
    must_release(&a, &pool, held[1]).await;
    // The "crashed" worker: it popped the front entry and died.
    let popped = raw_lpop(&r, &a.fast_queue_key(&pool)).await.expect("an entry");
    assert!(popped.starts_with(&held[0].to_string()), "{popped}");
    assert_eq!(must_allocate(&a, &pool, "n1").await, held[1], "Redis path");
    assert_eq!(must_allocate(&a, &pool, "n2").await, held[0], "PostgreSQL path finds it");
    // The same crash, repaired by reconcile instead.
    must_release(&a, &pool, held[0]).await;
    must_release(&a, &pool, held[1]).await;
    raw_lpop(&r, &a.fast_queue_key(&pool)).await.expect("an entry");
    assert_eq!(a.reconcile(&pool).await.expect("reconcile"), 2);
    assert_eq!(a.fast_queue(&pool).await.expect("queue"), vec![held[0], held[1]]);
    assert_eq!(a.audit(&pool).await.expect("audit").problems(), Vec::<String>::new());
}

/// A process that committed a release in PostgreSQL and died before pushing to Redis does not
/// leak the address.
#[tokio::test]
async fn flaw2_crash_between_delete_and_push_leaks_nothing() {
    let Some((_db, _r, a)) = allocator().await else { return };
    let pool = create(&a, spec("crash-push", "10.3.1.0/30")).await;
    let only = must_allocate(&a, &pool, "first").await;
    // The PostgreSQL half of a release, as a process dying before its Redis push leaves it.
    a.postgres().release(&pool, only).await.expect("release in PostgreSQL");
    assert_eq!(a.fast_queue(&pool).await.expect("queue"), Vec::<std::net::IpAddr>::new());
    assert_eq!(must_allocate(&a, &pool, "second").await, only, "not leaked");
    a.postgres().release(&pool, only).await.expect("release in PostgreSQL");
    a.reconcile(&pool).await.expect("reconcile");
    assert_eq!(a.fast_queue(&pool).await.expect("queue"), vec![only]);
}

/// Stale Redis entries (an address leased since, a duplicate, garbage) are skipped, never
/// handed out twice.
#[tokio::test]
async fn flaw5_stale_redis_entries_are_skipped() {
    let Some((_db, r, a)) = allocator().await else { return };
    let pool = create(&a, spec("stale", "10.3.2.0/28")).await;
    let key = a.fast_queue_key(&pool);
    let x = must_allocate(&a, &pool, "x").await;
    let y = must_allocate(&a, &pool, "y").await;
    must_release(&a, &pool, y).await;
    raw_rpush(&r, &key, &format!("{x}|0")).await;
    raw_rpush(&r, &key, &format!("{y}|0")).await;
    raw_rpush(&r, &key, "not-an-address|0").await;
    raw_rpush(&r, &key, "10.99.0.1|0").await;
    let mut seen = std::collections::HashSet::from([x]);
    for i in 0..12 {
        let addr = must_allocate(&a, &pool, &format!("n{i}")).await;
        assert!(seen.insert(addr), "{addr} handed out twice");
    }
    assert!(seen.contains(&y));
    match a.allocate(&pool, &owner("extra")).await {
        Err(Error::Exhausted { .. }) => {}
        other => panic!("a full pool: {other:?}"),
    }
    assert_eq!(a.audit(&pool).await.expect("audit").problems(), Vec::<String>::new());
}

/// Redis loses everything (FLUSHALL, then the server dies): allocation goes on through
/// PostgreSQL without a duplicate or a leak, and reconcile() restores the same free queue.
#[tokio::test]
async fn flaw5_redis_data_loss_then_reconcile_restores_the_free_set() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let Some(mut server) = kws_testenv::RedisServer::start().await else { return };
    let client = redis::Client::open(server.url()).expect("url");
    let a = PgRedisAllocator::new(db.pool().await, &client, "kws:").await.expect("connect");
    let pool = create(&a, spec("flush", "fd00:3::/64")).await;
    let mut held = Vec::new();
    for i in 0..200 {
        held.push(must_allocate(&a, &pool, &format!("o{i}")).await);
    }
    for addr in held.iter().step_by(3) {
        must_release(&a, &pool, *addr).await;
    }
    let before = a.fast_queue(&pool).await.expect("queue");
    assert_eq!(before.len(), 67);
    let mut c = client.get_multiplexed_async_connection().await.expect("redis");
    redis::cmd("FLUSHALL").query_async::<()>(&mut c).await.expect("FLUSHALL");
    assert_eq!(a.fast_queue(&pool).await.expect("queue"), Vec::<std::net::IpAddr>::new());
    assert_eq!(a.reconcile(&pool).await.expect("reconcile"), 67);
    assert_eq!(a.fast_queue(&pool).await.expect("queue"), before, "same free queue, same order");
    // Flushed again and not reconciled: the released addresses still come back (PostgreSQL
    // path), oldest first, and nothing is handed out twice.
    redis::cmd("FLUSHALL").query_async::<()>(&mut c).await.expect("FLUSHALL");
    assert_eq!(must_allocate(&a, &pool, "after-flush").await, before[0]);
    // Redis gone altogether: PostgreSQL alone serves.
    server.kill();
    assert_eq!(must_allocate(&a, &pool, "redis-dead").await, before[1]);
    must_release(&a, &pool, before[1]).await;
    let audit = a.audit(&pool).await.expect("audit");
    assert_eq!(audit.problems(), Vec::<String>::new());
    assert_eq!(audit.leases.len(), 200 - 67 + 1);
}

/// A Redis copy of an address that `allocate_specific` took and that was released again is
/// stale: it does not jump ahead of older releases (found by the model test).
#[tokio::test]
async fn stale_copy_of_a_rereleased_address_keeps_fifo() {
    let Some((_db, _r, a)) = allocator().await else { return };
    let pool = create(&a, spec("refifo", "10.3.3.0/28")).await;
    let at = |h: u8| testkit::ip(&format!("10.3.3.{h}"));
    for i in 0..9 {
        assert_eq!(must_allocate(&a, &pool, &format!("o{i}")).await, at(2 + i));
    }
    for h in [3, 6, 7] {
        must_release(&a, &pool, at(h)).await;
    }
    a.allocate_specific(&pool, at(7), &owner("s7")).await.expect("specific .7");
    must_release(&a, &pool, at(10)).await;
    must_release(&a, &pool, at(7)).await;
    assert_eq!(must_allocate(&a, &pool, "a").await, at(3));
    a.allocate_specific(&pool, at(6), &owner("s6")).await.expect("specific .6");
    assert_eq!(must_allocate(&a, &pool, "b").await, at(10), "oldest release first");
    assert_eq!(must_allocate(&a, &pool, "c").await, at(7));
    assert_eq!(a.audit(&pool).await.expect("audit").problems(), Vec::<String>::new());
}
