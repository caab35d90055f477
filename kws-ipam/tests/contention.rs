//! The causes of a false `Exhausted` and of deadlocks between batches (issue 24), made
//! deterministic: another transaction is held open, by hand, at the moment that matters.
//!
//! Each runs on `PostgresAllocator` and on `PgRedisAllocator` with its fast queue emptied (as
//! after Redis lost its data), so that its allocations go through PostgreSQL's queue, where
//! both causes were.
#![cfg(all(feature = "postgres", feature = "redis"))]

use std::{net::IpAddr, sync::Arc, time::Duration};

use kws_core::DnsLabel;
use kws_ipam::{Error, IpAllocator, PgRedisAllocator, PostgresAllocator, testkit};
use testkit::{create, expect_err, must_allocate, must_release, owner, spec};

/// One backend under test, on a database of its own.
struct Backend {
    db: kws_testenv::TestDb,
    _redis: Option<kws_testenv::TestRedis>,
    alloc: Arc<dyn IpAllocator>,
    pg: PostgresAllocator,
    redis: Option<PgRedisAllocator>,
}

impl Backend {
    async fn postgres() -> Option<Self> {
        let db = kws_testenv::postgres().await?;
        let pg = PostgresAllocator::new(db.pool_with(8).await).await.expect("migrations");
        Some(Self { db, _redis: None, alloc: Arc::new(pg.clone()), pg, redis: None })
    }

    async fn pg_redis() -> Option<Self> {
        let db = kws_testenv::postgres().await?;
        let r = kws_testenv::redis().await?;
        let client = r.client();
        let a = PgRedisAllocator::new(db.pool_with(8).await, &client, r.prefix());
        let a = a.await.expect("connect");
        let pg = a.postgres().clone();
        Some(Self { db, _redis: Some(r), alloc: Arc::new(a.clone()), pg, redis: Some(a) })
    }

    /// Empties the fast queue of `pool` (PostgreSQL+Redis only): allocations then go through
    /// PostgreSQL's queue.
    async fn lose_fast_queue(&self, pool: &DnsLabel) {
        let (Some(a), Some(r)) = (&self.redis, &self._redis) else { return };
        let mut c = r.client().get_multiplexed_async_connection().await.expect("redis");
        let key = a.fast_queue_key(pool);
        redis::cmd("DEL").arg(key).query_async::<i64>(&mut c).await.expect("DEL");
    }
}

/// One operation of a hand-made call of `kws_ipam.batch`: kind, address, owner.
type RawOp<'a> = (&'a str, Option<IpAddr>, Option<&'a str>);

/// Calls `kws_ipam.batch` on `conn` (a connection or an open transaction) as the allocator
/// does, with `ops` on `pool`; answers each operation's kind, address and text.
async fn raw_batch<'c, E>(
    conn: E,
    pool: &DnsLabel,
    ops: &[RawOp<'_>],
) -> Result<Vec<(String, Option<IpAddr>, Option<String>)>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    let kinds: Vec<&str> = ops.iter().map(|o| o.0).collect();
    let pools = vec![pool.as_str(); ops.len()];
    let addrs: Vec<Option<IpAddr>> = ops.iter().map(|o| o.1).collect();
    let owners: Vec<Option<&str>> = ops.iter().map(|o| o.2).collect();
    sqlx::query_as("SELECT o_kind, o_addr, o_text FROM kws_ipam.batch($1, $2, $3, $4, $5)")
        .bind(kinds)
        .bind(pools)
        .bind(addrs)
        .bind(owners)
        .bind(vec![None::<i64>; ops.len()])
        .fetch_all(conn)
        .await
}

/// Leases every usable address of `pool` (a small one), in order, to owners `f0`, `f1`, ...
async fn fill(a: &dyn IpAllocator, pool: &DnsLabel) -> Vec<IpAddr> {
    let mut got = Vec::new();
    loop {
        match a.allocate(pool, &owner(&format!("f{}", got.len()))).await {
            Ok(lease) => got.push(lease.addr),
            Err(Error::Exhausted { .. }) => return got,
            Err(e) => panic!("fill {pool}: {e}"),
        }
    }
}

/// Backends of the test database waiting for a lock (beside `conn`'s own).
async fn lock_waiters(conn: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock' \
         AND pid <> pg_backend_pid()",
    )
    .fetch_one(conn)
    .await
    .expect("pg_stat_activity")
}

/// Waits (10 s at most) until `n` backends of the test database wait for a lock, or `done`
/// says the operations that should be waiting have returned; answers whether they wait.
async fn until_waiting(conn: &sqlx::PgPool, n: i64, done: impl Fn() -> bool) -> bool {
    for _ in 0..1000 {
        if lock_waiters(conn).await >= n {
            return true;
        }
        if done() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Waits (10 s at most) until `pg` has counted `n` lock waits, or `done` says the operation
/// that should be waiting has returned; answers whether it reached `n`.
async fn until_polled(pg: &PostgresAllocator, n: u64, done: impl Fn() -> bool) -> bool {
    for _ in 0..1000 {
        if pg.contention().lock_waits >= n {
            return true;
        }
        if done() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Deadlocks PostgreSQL counted in the test database so far (its statistics are flushed by
/// each backend within a second of its transaction, so this waits that long first).
async fn deadlocks(conn: &sqlx::PgPool) -> i64 {
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    sqlx::query_scalar("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(conn)
        .await
        .expect("pg_stat_database")
}

/// Cause 1: an allocation for an owner that already holds a lease takes no free entry. A batch
/// holding such an allocation is left open; meanwhile the other allocations get the oldest
/// released address first, then the last one, and only then `Exhausted`. Before, the held
/// owner's allocation took the oldest entry and kept it locked until its batch ended: the
/// others got the newer one, then `Exhausted` while the oldest was free.
async fn held_owner_takes_nothing(b: &Backend) {
    let a = &*b.alloc;
    let pool = create(a, spec("held", "10.40.0.0/29")).await;
    let all = fill(a, &pool).await;
    assert_eq!(all.len(), 5, "usable addresses of a /29 beside its gateway");
    let (older, newer) = (all[1], all[2]);
    must_release(a, &pool, older).await;
    must_release(a, &pool, newer).await;
    b.lose_fast_queue(&pool).await;
    let conn = b.db.pool_with(2).await;
    let mut open = conn.begin().await.expect("begin");
    let held = raw_batch(&mut *open, &pool, &[("a", None, Some("f0"))]).await.expect("batch");
    assert_eq!(held, [("held".to_string(), Some(all[0]), None)], "f0's own lease");
    assert_eq!(must_allocate(a, &pool, "n1").await, older, "oldest released first");
    assert_eq!(must_allocate(a, &pool, "n2").await, newer, "the last free address");
    expect_err(a.allocate(&pool, &owner("n3")).await, "a full pool", |e| {
        matches!(e, Error::Exhausted { .. })
    });
    open.commit().await.expect("commit");
    assert_eq!(b.pg.audit(&pool).await.expect("audit").problems(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_holding_a_lease_takes_no_free_entry_postgres() {
    let Some(b) = Backend::postgres().await else { return };
    held_owner_takes_nothing(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_holding_a_lease_takes_no_free_entry_pg_redis() {
    let Some(b) = Backend::pg_redis().await else { return };
    held_owner_takes_nothing(&b).await;
}

/// Cause 1, the general form: the one free address is taken by a batch left open. An
/// allocation meanwhile waits for that batch instead of answering `Exhausted`: when the batch
/// rolls back, it gets the address; when the batch commits, nothing is left and it answers
/// `Exhausted`. Before, it answered `Exhausted` at once in both cases (the entry was skipped as
/// locked, and a skipped entry counted as none left). While it waits it holds and queues for
/// no lock: a queued request made every other allocation pass the entry over.
async fn held_entries_are_waited_for(b: &Backend) {
    let a = b.alloc.clone();
    let pool = create(&*a, spec("busy", "10.40.1.0/29")).await;
    let all = fill(&*a, &pool).await;
    let last = all[3];
    let conn = b.db.pool_with(2).await;
    must_release(&*a, &pool, last).await;
    let mut polls = b.pg.contention().lock_waits;
    for (round, commit) in [(0, false), (1, true)] {
        b.lose_fast_queue(&pool).await;
        let mut open = conn.begin().await.expect("begin");
        let holder = format!("holder{round}");
        let took = raw_batch(&mut *open, &pool, &[("a", None, Some(&holder))]).await;
        assert_eq!(took.expect("batch"), [("new".to_string(), Some(last), None)]);
        let (a2, pool2) = (a.clone(), pool.clone());
        let waiting =
            tokio::spawn(async move { a2.allocate(&pool2, &owner(&format!("w{round}"))).await });
        let waits = until_polled(&b.pg, polls + 3, || waiting.is_finished()).await;
        assert_eq!(lock_waiters(&conn).await, 0, "round {round}: the waiter queues for a lock");
        if commit {
            open.commit().await.expect("commit");
        } else {
            open.rollback().await.expect("rollback");
        }
        let got = waiting.await.expect("task");
        assert!(waits, "round {round}: the allocation answered {got:?} without waiting");
        let polled = b.pg.contention().lock_waits;
        assert!(polled >= polls + 3, "round {round}: waits counted ({polls} -> {polled})");
        polls = polled;
        match (commit, got) {
            (false, Ok(lease)) => assert_eq!(lease.addr, last, "the address rolled back"),
            (true, Err(Error::Exhausted { .. })) => {}
            (_, other) => panic!("round {round} (holder commits: {commit}): {other:?}"),
        }
        // Whoever holds it now (the waiter, or the holder that committed) hands it back.
        must_release(&*a, &pool, last).await;
    }
    assert_eq!(b.pg.audit(&pool).await.expect("audit").problems(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocation_waits_for_entries_held_elsewhere_postgres() {
    let Some(b) = Backend::postgres().await else { return };
    held_entries_are_waited_for(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocation_waits_for_entries_held_elsewhere_pg_redis() {
    let Some(b) = Backend::pg_redis().await else { return };
    held_entries_are_waited_for(&b).await;
}

/// Cause 2: two batches each release an address that the other leases with
/// `allocate_specific`. A third transaction holds both releases at the same point (it inserts,
/// uncommitted, a free entry of each address, as a refill can), so both batches are in flight
/// together; then it rolls back. They must not deadlock: before, each waited for the other's
/// released lease until PostgreSQL's deadlock detector (1 s) rolled one back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_batches_crossing_releases_and_specific_allocations_do_not_deadlock() {
    let Some(b) = Backend::postgres().await else { return };
    let a = &*b.alloc;
    let pool = create(a, spec("cross", "10.40.2.0/24")).await;
    let x = must_allocate(a, &pool, "ox").await;
    let y = must_allocate(a, &pool, "oy").await;
    let conn = b.db.pool_with(4).await;
    let before = deadlocks(&conn).await;
    let mut barrier = conn.begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO kws_ipam.free_queue (pool, address, ready_at) \
         SELECT $1, a, now() FROM unnest($2::inet[]) AS a",
    )
    .bind(pool.as_str())
    .bind(vec![x, y])
    .execute(&mut *barrier)
    .await
    .expect("barrier entries");
    let cross = |first: IpAddr, second: IpAddr, who: &'static str| {
        let (conn, pool) = (conn.clone(), pool.clone());
        tokio::spawn(async move {
            let ops = [("r", Some(first), None), ("s", Some(second), Some(who))];
            raw_batch(&conn, &pool, &ops).await
        })
    };
    let one = cross(x, y, "sx");
    let two = cross(y, x, "sy");
    let both = until_waiting(&conn, 2, || one.is_finished() || two.is_finished()).await;
    assert!(both, "both batches are in flight");
    barrier.rollback().await.expect("rollback");
    let one = one.await.expect("task").expect("the first batch");
    let two = two.await.expect("task").expect("the second batch");
    let kinds = |r: &[(String, Option<IpAddr>, Option<String>)]| -> Vec<String> {
        r.iter().map(|o| o.0.clone()).collect()
    };
    // Whichever ran first found the other's address still leased; the second got it.
    let (k1, k2) = (kinds(&one), kinds(&two));
    assert!(
        (k1 == ["released", "taken"] && k2 == ["released", "new"])
            || (k1 == ["released", "new"] && k2 == ["released", "taken"]),
        "{one:?} {two:?}"
    );
    assert_eq!(deadlocks(&conn).await - before, 0, "deadlocks in the test database");
    assert_eq!(b.pg.audit(&pool).await.expect("audit").problems(), Vec::<String>::new());
}

/// PostgreSQL+Redis: an allocation for an owner that holds a lease answers it without popping
/// the fast queue. Before, it popped the front entry and pushed it back after PostgreSQL
/// answered: meanwhile other allocations passed it over, and the entry came back without its
/// quarantine end.
#[tokio::test]
async fn an_owner_holding_a_lease_leaves_the_fast_queue_untouched() {
    let Some(b) = Backend::pg_redis().await else { return };
    let (Some(a), Some(r)) = (&b.redis, &b._redis) else { return };
    let mut quarantined = spec("fastheld", "10.40.3.0/29");
    quarantined.quarantine = Duration::from_millis(100);
    let pool = create(a, quarantined).await;
    let all = fill(a, &pool).await;
    must_release(a, &pool, all[1]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = r.client().get_multiplexed_async_connection().await.expect("redis");
    let key = a.fast_queue_key(&pool);
    let lrange = redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).clone();
    let before: Vec<String> = lrange.query_async(&mut c).await.expect("LRANGE");
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(must_allocate(a, &pool, "f0").await, all[0], "f0's own lease");
    let after: Vec<String> = lrange.query_async(&mut c).await.expect("LRANGE");
    assert_eq!(after, before, "the fast queue");
}

/// A deadlock PostgreSQL breaks is counted, and the batch runs again. Batches never deadlock
/// each other, so a transaction outside the allocator closes the cycle: it holds an
/// uncommitted free entry of the address a release queues (the release waits for it), then
/// deletes that address's lease, which the release holds. Its own deadlock_timeout is long, so
/// PostgreSQL rolls the batch back, which runs again until the outsider has rolled back.
async fn deadlocks_are_counted(b: &Backend) {
    let a = b.alloc.clone();
    let pool = create(&*a, spec("counted", "10.40.4.0/24")).await;
    let x = must_allocate(&*a, &pool, "ox").await;
    let conn = b.db.pool_with(2).await;
    let mut outsider = conn.begin().await.expect("begin");
    sqlx::query("SET LOCAL deadlock_timeout = '10s'").execute(&mut *outsider).await.expect("set");
    sqlx::query("INSERT INTO kws_ipam.free_queue (pool, address, ready_at) VALUES ($1, $2, now())")
        .bind(pool.as_str())
        .bind(x)
        .execute(&mut *outsider)
        .await
        .expect("entry");
    let (a2, pool2) = (a.clone(), pool.clone());
    let release = tokio::spawn(async move { a2.release(&pool2, x).await });
    assert!(until_waiting(&conn, 1, || release.is_finished()).await, "the release waits");
    sqlx::query("DELETE FROM kws_ipam.leases WHERE pool = $1 AND address = $2")
        .bind(pool.as_str())
        .bind(x)
        .execute(&mut *outsider)
        .await
        .expect("the outsider's delete, once the batch is rolled back");
    outsider.rollback().await.expect("rollback");
    let lease = release.await.expect("task").expect("release after the retry");
    assert_eq!(lease.owner.as_str(), "ox");
    // One deadlock at least: the batch run again can lock the lease before the outsider's
    // delete does, which closes the same cycle once more.
    let seen = b.pg.contention();
    assert!(seen.deadlocks >= 1, "{seen:?}");
    assert_eq!((seen.batch_retries, seen.serialization_failures), (seen.deadlocks, 0));
    if let Some(r) = &b.redis {
        assert_eq!(r.contention(), seen, "PostgreSQL+Redis reports its PostgreSQL side's");
    }
    assert_eq!(b.pg.audit(&pool).await.expect("audit").problems(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlocks_are_counted_postgres() {
    let Some(b) = Backend::postgres().await else { return };
    deadlocks_are_counted(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlocks_are_counted_pg_redis() {
    let Some(b) = Backend::pg_redis().await else { return };
    deadlocks_are_counted(&b).await;
}

/// An allocation for an owner that another transaction is leasing an address to (here an
/// `allocate_specific` left uncommitted) waits for that transaction outside any batch, then
/// answers the owner's lease, having taken nothing meanwhile.
async fn an_owner_being_leased_is_waited_for(b: &Backend) {
    let a = b.alloc.clone();
    let pool = create(&*a, spec("leasing", "10.40.5.0/24")).await;
    let first = must_allocate(&*a, &pool, "first").await;
    let target = testkit::ip("10.40.5.200");
    let conn = b.db.pool_with(2).await;
    let mut open = conn.begin().await.expect("begin");
    let took = raw_batch(&mut *open, &pool, &[("s", Some(target), Some("o"))]).await;
    assert_eq!(took.expect("batch"), [("new".to_string(), None, None)]);
    let (a2, pool2) = (a.clone(), pool.clone());
    let waiting = tokio::spawn(async move { a2.allocate(&pool2, &owner("o")).await });
    let waits = until_waiting(&conn, 1, || waiting.is_finished()).await;
    open.commit().await.expect("commit");
    let got = waiting.await.expect("task").expect("allocate");
    assert!(waits, "the allocation answered {got:?} without waiting");
    assert_eq!(got.addr, target, "the owner's lease");
    assert_eq!(b.pg.contention().lock_waits, 1);
    // Nothing was taken for it: the next allocation gets the address after `first`.
    let next = must_allocate(&*a, &pool, "next").await;
    let after = |x: IpAddr| match x {
        IpAddr::V4(v) => IpAddr::V4((u32::from(v) + 1).into()),
        IpAddr::V6(v) => IpAddr::V6((u128::from(v) + 1).into()),
    };
    assert_eq!(next, after(first), "no entry passed over");
    assert_eq!(b.pg.audit(&pool).await.expect("audit").problems(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_being_leased_is_waited_for_postgres() {
    let Some(b) = Backend::postgres().await else { return };
    an_owner_being_leased_is_waited_for(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_being_leased_is_waited_for_pg_redis() {
    let Some(b) = Backend::pg_redis().await else { return };
    an_owner_being_leased_is_waited_for(&b).await;
}
