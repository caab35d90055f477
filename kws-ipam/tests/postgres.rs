//! The conformance suite and the flaw tests on `PostgresAllocator`, against a real PostgreSQL.
#![cfg(feature = "postgres")]

use std::net::IpAddr;

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

/// One batch of allocations (a run) takes the oldest free addresses and passes none over: an
/// owner in it that holds a lease already and an owner asking twice take nothing, and what the
/// run took and did not lease is back at the head of the queue, in order.
#[tokio::test]
async fn a_run_of_allocations_takes_the_oldest_entries_and_passes_none_over() {
    let Some((_db, a)) = allocator().await else { return };
    let a = a.with_group_commit(64, 1);
    let pool = testkit::create(&a, testkit::spec("run", "10.7.1.0/24")).await;
    let mut released = Vec::new();
    for i in 0..8 {
        released.push(testkit::must_allocate(&a, &pool, &format!("r{i}")).await);
    }
    let holder = testkit::must_allocate(&a, &pool, "holder").await;
    for addr in &released {
        testkit::must_release(&a, &pool, *addr).await;
    }
    let before = a.group_commit_counts();
    // The first call runs alone (a lone call starts its batch at once); the other four queue
    // behind it and run as one batch.
    let calls = ["first", "x", "holder", "x", "y"];
    let got: Vec<IpAddr> = futures::future::join_all(calls.iter().map(|o| {
        let (a, pool) = (a.clone(), pool.clone());
        async move { a.allocate(&pool, &testkit::owner(o)).await.expect("allocate").addr }
    }))
    .await;
    let after = a.group_commit_counts();
    assert_eq!((after.0 - before.0, after.1 - before.1), (2, 5), "batches, operations");
    assert_eq!(got[0], released[0]);
    assert_eq!(got[2], holder, "an owner's allocate is idempotent inside a run");
    assert_eq!(got[1], got[3], "an owner asking twice in one run gets one address");
    let mut new = vec![got[1], got[4]];
    new.sort();
    assert_eq!(new, released[1..3].to_vec(), "the two oldest entries, none passed over");
    let queue: Vec<IpAddr> =
        a.free_queue(&pool).await.expect("queue").into_iter().map(|e| e.0).collect();
    assert_eq!(queue, released[3..].to_vec(), "the rest of the queue, in order");
    let audit = a.audit(&pool).await.expect("audit");
    assert_eq!(audit.problems(), Vec::<String>::new());
}

/// A refill runs in the background before the chunk of fresh addresses runs out: after
/// allocations reach the last quarter of the first chunk (1,024), the next chunk is moved in
/// while the rest of the first is still waiting, so no allocation stops for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_chunk_is_moved_in_before_the_fresh_addresses_run_out() {
    let Some((db, a)) = allocator().await else { return };
    let pool = testkit::create(&a, testkit::spec("topup", "10.8.0.0/16")).await;
    for i in 0..800 {
        testkit::must_allocate(&a, &pool, &format!("o{i}")).await;
    }
    let conn = db.pool_with(1).await;
    let mut waiting = 0;
    for _ in 0..100 {
        waiting = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM kws_ipam.free_queue WHERE pool = $1 AND ready_at = '-infinity'",
        )
        .bind(pool.as_str())
        .fetch_one(&conn)
        .await
        .expect("count");
        if waiting > 1024 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // 1,024 - 800 of the first chunk, and the whole second one.
    assert_eq!(waiting, 1024 - 800 + 1024, "fresh addresses waiting");
    let audit = a.audit(&pool).await.expect("audit");
    assert_eq!(audit.problems(), Vec::<String>::new());
}

/// Allocates in `pool` until it is exhausted, and returns what it handed out.
async fn drain(a: &PostgresAllocator, pool: &kws_core::DnsLabel, tag: &str) -> Vec<IpAddr> {
    let mut got = Vec::new();
    loop {
        match a.allocate(pool, &testkit::owner(&format!("{tag}{}", got.len()))).await {
            Ok(lease) => got.push(lease.addr),
            Err(kws_ipam::Error::Exhausted { .. }) => return got,
            Err(e) => panic!("allocate in {pool}: {e}"),
        }
    }
}

/// Releases `target` (leased, with a stale free entry), checks that the pool's state has no
/// problem, then allocates until the pool is exhausted: `others` addresses, never `target`
/// (in quarantine).
async fn release_then_drain(
    a: &PostgresAllocator,
    pool: &kws_core::DnsLabel,
    target: IpAddr,
    others: usize,
) {
    testkit::must_release(a, pool, target).await;
    let audit = a.audit(pool).await.expect("audit");
    assert_eq!(audit.problems(), Vec::<String>::new(), "{pool} after the race and the release");
    let got = drain(a, pool, "r").await;
    assert!(!got.contains(&target), "{target} was handed out in its quarantine");
    assert_eq!(got.len(), others, "every other address of {pool}");
}

/// Two races leave a free entry whose address an `allocate_specific` leased (a stale entry):
/// a refill adding the address while the `allocate_specific` is uncommitted, and a run of
/// allocations putting back an entry it took while the `allocate_specific` leased its address
/// (it skips entries another transaction holds). When that address is then released, it must
/// have one free entry, in quarantine: with fresh addresses in a table of their own, it was
/// free twice, and an allocation could take the fresh copy during the quarantine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_entry_and_a_release_leave_the_address_free_once_and_in_quarantine() {
    let Some((db, a)) = allocator().await else { return };
    let conn = db.pool_with(2).await;
    let quarantined = |name: &str, prefix: &str| {
        let mut spec = testkit::spec(name, prefix);
        spec.quarantine = std::time::Duration::from_secs(3600);
        spec
    };
    let batch = "SELECT o_kind FROM kws_ipam.batch($1, $2, $3, $4, $5)";
    let ops = |op: &str, pool: &str, addr: Option<IpAddr>, owners: &[&str]| {
        let n = owners.len();
        let owners: Vec<String> = owners.iter().map(|o| o.to_string()).collect();
        sqlx::query_scalar::<_, String>(batch)
            .bind(vec![op.to_string(); n])
            .bind(vec![pool.to_string(); n])
            .bind(vec![addr; n])
            .bind(owners)
            .bind(vec![None::<i64>; n])
    };

    // A refill racing an uncommitted allocate_specific.
    let pool = testkit::create(&a, quarantined("refillrace", "10.9.0.0/24")).await;
    let target = testkit::ip("10.9.0.200");
    let mut tx = conn.begin().await.expect("begin");
    let kind = ops("s", pool.as_str(), Some(target), &["static"])
        .fetch_all(&mut *tx)
        .await
        .expect("allocate_specific");
    assert_eq!(kind, ["new"]);
    // The queues are empty: this allocation refills the whole /24, .200 included.
    testkit::must_allocate(&a, &pool, "first").await;
    tx.commit().await.expect("commit");
    release_then_drain(&a, &pool, target, 253 - 2).await;

    // A run putting back an entry while allocate_specific leases its address.
    let pool = testkit::create(&a, quarantined("runrace", "10.9.1.0/24")).await;
    for o in ["o1", "o2", "o3"] {
        testkit::must_allocate(&a, &pool, o).await; // .2, .3, .4
    }
    let target = testkit::ip("10.9.1.5");
    let mut tx = conn.begin().await.expect("begin");
    // Three allocations of owners that hold leases: the run takes .5, .6, .7 and puts them back.
    let kinds =
        ops("a", pool.as_str(), None, &["o1", "o2", "o3"]).fetch_all(&mut *tx).await.expect("run");
    assert_eq!(kinds, ["held", "held", "held"]);
    a.allocate_specific(&pool, target, &testkit::owner("static")).await.expect("specific");
    tx.commit().await.expect("commit");
    release_then_drain(&a, &pool, target, 253 - 4).await;
}

/// A lease lookup by owner or by address, written as the code writes it (the pool as a
/// filter), reads its own index by what it looks up, even for a pool the statistics do not
/// know yet (every pool, right after it is created). With both indexes leading with `pool`,
/// PostgreSQL once broke the tie with the first index and read the pool's leases through
/// `(pool, address)`, filtering by owner: O(leases) per lookup.
#[tokio::test]
async fn lease_lookups_use_their_own_index_whatever_the_statistics() {
    let Some((db, _a)) = allocator().await else { return };
    let conn = db.pool_with(1).await;
    let fill = |pool: &'static str, net: &'static str, n: i32| {
        let conn = conn.clone();
        async move {
            sqlx::query(
                "INSERT INTO kws_ipam.leases (pool, address, owner) \
                 SELECT $1, $2::inet + g, $1 || '-' || g FROM generate_series(1, $3) AS g",
            )
            .bind(pool)
            .bind(net)
            .bind(n)
            .execute(&conn)
            .await
            .expect("fill");
        }
    };
    fill("known", "10.20.0.0", 2_000).await;
    sqlx::query("ANALYZE kws_ipam.leases").execute(&conn).await.expect("analyze");
    fill("new", "10.21.0.0", 50_000).await;
    let plan = |sql: &'static str| {
        let conn = conn.clone();
        async move {
            let rows: Vec<String> =
                sqlx::query_scalar(sql).fetch_all(&conn).await.expect("explain");
            rows.join("\n")
        }
    };
    let by_owner = plan(
        "EXPLAIN (COSTS OFF) SELECT address FROM kws_ipam.leases \
         WHERE pool IS NOT DISTINCT FROM 'new' AND owner = 'new-7'",
    )
    .await;
    assert!(
        by_owner.contains("using leases_owner") && by_owner.contains("Index Cond: (owner = "),
        "{by_owner}"
    );
    let by_address = plan(
        "EXPLAIN (COSTS OFF) SELECT owner FROM kws_ipam.leases \
         WHERE pool IS NOT DISTINCT FROM 'new' AND address = '10.21.0.7'",
    )
    .await;
    assert!(
        by_address.contains("using leases_address")
            && by_address.contains("Index Cond: (address = "),
        "{by_address}"
    );
}

/// Probes of `leases` are served by the index of what they look up even under a generic plan
/// made on a table that was emptied and vacuumed, as PL/pgSQL and prepared statements keep.
/// Both lease indexes end with the pool; a probe written `pool = $1 AND address = $2` then got
/// a scan of `leases_owner` on the pool alone, reading every lease per probe. The batch
/// function writes every lease probe with the pool as a filter
/// (`IS NOT DISTINCT FROM`), and under a generic plan, with sequential scans off as in the
/// function, each form keeps its own index.
#[tokio::test]
async fn lease_probes_keep_their_index_under_a_generic_plan_made_on_an_empty_table() {
    let Some((db, _a)) = allocator().await else { return };
    let conn = db.pool_with(1).await;
    for sql in [
        "INSERT INTO kws_ipam.leases (pool, address, owner) \
         SELECT 'p', '10.40.0.0'::inet + g, 'o' || g FROM generate_series(1, 5000) AS g",
        "DELETE FROM kws_ipam.leases",
        "VACUUM ANALYZE kws_ipam.leases",
    ] {
        sqlx::query(sql).execute(&conn).await.expect(sql);
    }
    let source: String = sqlx::query_scalar(
        "SELECT prosrc FROM pg_proc WHERE proname = 'batch' \
         AND pronamespace = 'kws_ipam'::regnamespace",
    )
    .fetch_one(&conn)
    .await
    .expect("batch source");
    assert!(!source.contains("l.pool = "), "a lease probe names the pool as an index condition");
    let probes = source.matches("FROM kws_ipam.leases l").count();
    assert!(probes >= 7, "{probes} lease probes in the batch function");
    let filtered = source.matches("l.pool IS NOT DISTINCT FROM ").count();
    assert_eq!(filtered, probes, "lease probes naming the pool as a filter");
    let mut tx = conn.begin().await.expect("begin");
    for sql in [
        "SET LOCAL enable_seqscan = off",
        "SET LOCAL plan_cache_mode = force_generic_plan",
        "PREPARE by_address(text, inet) AS SELECT owner FROM kws_ipam.leases l \
         WHERE l.pool IS NOT DISTINCT FROM $1 AND l.address = $2",
        "PREPARE by_owner(text, text) AS SELECT address FROM kws_ipam.leases l \
         WHERE l.pool IS NOT DISTINCT FROM $1 AND l.owner = $2",
    ] {
        sqlx::query(sql).execute(&mut *tx).await.expect(sql);
    }
    for (probe, index) in [
        ("by_address('p', '10.40.0.7')", "leases_address"),
        ("by_owner('p', 'o7')", "leases_owner"),
    ] {
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN (COSTS OFF) EXECUTE {probe}"))
            .fetch_all(&mut *tx)
            .await
            .expect("explain");
        let plan = plan.join("\n");
        assert!(plan.contains(&format!("using {index} ")), "{probe}:\n{plan}");
    }
}

/// A refill is planned against the leases table as it is, at every refill. Prepared, its
/// probe of `leases` got a generic plan made while the table was empty and kept it on that
/// connection as the table grew: a full scan of `leases_owner` per address, 1.5 s per refill
/// at 40,000 leases (a load run at 570 allocations/s). So the refill must not leave a
/// prepared statement on its connection, and its probe, planned with statistics taken on an
/// empty table, must read `leases_address` by address.
#[tokio::test]
async fn a_refill_is_planned_against_the_table_as_it_is() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let a = PostgresAllocator::new(db.pool_with(1).await).await.expect("migrations");
    sqlx::query("ANALYZE kws_ipam.leases").execute(a.db()).await.expect("analyze");
    let pool = testkit::create(&a, testkit::spec("replan", "10.8.0.0/16")).await;
    for i in 0..8 {
        testkit::must_allocate(&a, &pool, &format!("o{i}")).await;
    }
    let prepared: Vec<String> = sqlx::query_scalar(
        "SELECT statement FROM pg_prepared_statements \
         WHERE statement LIKE '%unnest%' AND statement NOT LIKE '%pg_prepared_statements%'",
    )
    .fetch_all(a.db())
    .await
    .expect("prepared statements");
    assert_eq!(prepared, Vec::<String>::new(), "refill statements kept prepared");
    sqlx::query(
        "INSERT INTO kws_ipam.leases (pool, address, owner) \
         SELECT 'other', '10.9.0.0'::inet + g, 'o' || g FROM generate_series(1, 50000) AS g",
    )
    .execute(a.db())
    .await
    .expect("fill");
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN (COSTS OFF) SELECT a FROM unnest('{10.9.0.7,10.8.9.9}'::inet[]) AS a \
         WHERE NOT EXISTS (SELECT 1 FROM kws_ipam.leases l \
                           WHERE l.pool IS NOT DISTINCT FROM 'replan' AND l.address = a OFFSET 0)",
    )
    .fetch_all(a.db())
    .await
    .expect("explain");
    let plan = plan.join("\n");
    assert!(
        plan.contains("leases_address")
            && !plan.contains("leases_owner")
            && !plan.contains("Seq Scan on leases"),
        "{plan}"
    );
}

/// A run of allocations takes its entries by index and deletes them by TID, whatever the
/// statistics. The planner prices a TID scan of an array it cannot see at 10 page reads, so on
/// a free queue of up to about 1,500 rows it read the whole table instead, for every run:
/// O(queue) per batch. The batch function runs with its own settings (`pg_proc.proconfig`);
/// under them, both takes of a run, written as in the function, must plan as
/// an ordered index scan (no sort: its rows come locked in the order it hands them out), and
/// the delete of what it took as a TID scan.
#[tokio::test]
async fn a_run_takes_its_entries_by_tid_whatever_the_statistics() {
    let Some((db, _a)) = allocator().await else { return };
    let conn = db.pool_with(1).await;
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO kws_ipam.free_queue (pool, address, ready_at) \
         SELECT 'big', '10.30.0.0'::inet + g, CASE WHEN g % 2 = 0 THEN '-infinity' ELSE now() END \
         FROM generate_series(1, 1000) AS g",
    )
    .execute(&mut *tx)
    .await
    .expect("fill");
    let settings: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(proconfig) FROM pg_proc \
         WHERE proname = 'batch' AND pronamespace = 'kws_ipam'::regnamespace",
    )
    .fetch_all(&mut *tx)
    .await
    .expect("proconfig");
    for setting in &settings {
        let (name, value) = setting.split_once('=').expect("name=value");
        sqlx::query("SELECT set_config($1, $2, true)")
            .bind(name)
            .bind(value)
            .execute(&mut *tx)
            .await
            .expect("set");
    }
    let takes = [
        (
            "free_queue_order",
            "SELECT q.ctid AS t, q.address AS a, q.ready_at AS r, q.id AS i \
          FROM kws_ipam.free_queue q WHERE q.pool = 'big' AND q.ready_at > '-infinity' \
          AND q.ready_at <= now() AND q.ctid <> ALL ('{}'::tid[]) \
          ORDER BY q.ready_at, q.id LIMIT 8 FOR UPDATE SKIP LOCKED",
        ),
        (
            "free_queue_fresh",
            "SELECT r.ctid AS t, r.address AS a FROM kws_ipam.free_queue r \
          WHERE r.pool = 'big' AND r.ready_at = '-infinity' AND r.ctid <> ALL ('{}'::tid[]) \
          ORDER BY r.address LIMIT 8 FOR UPDATE SKIP LOCKED",
        ),
    ];
    for (index, take) in takes {
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN (COSTS OFF) {take}"))
            .fetch_all(&mut *tx)
            .await
            .expect("explain");
        let plan = plan.join("\n");
        assert!(
            plan.contains(&format!("Index Scan using {index} on free_queue q"))
                || plan.contains(&format!("Index Scan using {index} on free_queue r")),
            "settings {settings:?}:\n{plan}"
        );
        assert!(!plan.contains("Sort") && !plan.contains("Seq Scan"), "{plan}");
    }
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN (COSTS OFF) DELETE FROM kws_ipam.free_queue f \
         WHERE f.ctid = ANY ('{\"(0,1)\",\"(0,2)\"}'::tid[]) RETURNING f.id, f.address",
    )
    .fetch_all(&mut *tx)
    .await
    .expect("explain");
    let plan = plan.join("\n");
    assert!(plan.contains("Tid Scan on free_queue f") && !plan.contains("Seq Scan"), "{plan}");
}

/// Connections cut while idle, as by a PostgreSQL restart, are replaced before a batch uses
/// them: the next operations succeed. A pool that does not check its connections before use
/// (`test_before_acquire(false)`) answers a `Backend` error for the first batch on each one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_while_idle_are_replaced_before_a_batch_uses_them() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let a = PostgresAllocator::connect(db.url(), 4).await.expect("connect");
    let pool = testkit::create(&a, testkit::spec("cut", "10.9.2.0/24")).await;
    let owners: Vec<String> = (0..8).map(|i| format!("before{i}")).collect();
    futures::future::join_all(owners.iter().map(|o| testkit::must_allocate(&a, &pool, o))).await;
    let admin = db.pool_with(1).await;
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&admin)
    .await
    .expect("terminate");
    assert!(!cut.is_empty() && cut.iter().all(|&c| c), "the allocator's connections: {cut:?}");
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    for i in 0..8 {
        let lease = a.allocate(&pool, &testkit::owner(&format!("after{i}"))).await;
        assert!(lease.is_ok(), "allocation {i} after the cut: {lease:?}");
    }
}

/// Pages (shared buffers hit or read) that taking the lowest fresh entry of `pool` reads, run
/// as the batch function runs it (sequential scans off), in a transaction rolled back.
async fn fresh_take_pages(conn: &sqlx::PgPool, pool: &kws_core::DnsLabel) -> i64 {
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query("SET LOCAL enable_seqscan = off").execute(&mut *tx).await.expect("set");
    let plan: serde_json::Value = sqlx::query_scalar(
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT r.ctid FROM kws_ipam.free_queue r \
         WHERE r.pool = $1 AND r.ready_at = '-infinity' AND r.ctid <> ALL ('{}'::tid[]) \
         ORDER BY r.address LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .bind(pool.as_str())
    .fetch_one(&mut *tx)
    .await
    .expect("explain");
    tx.rollback().await.expect("rollback");
    let top = &plan[0]["Plan"];
    let blocks = |key: &str| top[key].as_i64().unwrap_or_else(|| panic!("{key} in {plan}"));
    blocks("Shared Hit Blocks") + blocks("Shared Read Blocks")
}

/// Waits until no vacuum of `free_queue` runs; answers how many ran on it.
async fn vacuums_done(conn: &sqlx::PgPool) -> i64 {
    for _ in 0..200 {
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_progress_vacuum \
             WHERE relid = 'kws_ipam.free_queue'::regclass",
        )
        .fetch_one(conn)
        .await
        .expect("progress");
        if running == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    sqlx::query_scalar(
        "SELECT vacuum_count FROM pg_stat_user_tables \
         WHERE relid = 'kws_ipam.free_queue'::regclass",
    )
    .fetch_one(conn)
    .await
    .expect("vacuum count")
}

/// The fresh take stays a few pages however many allocations came before it. Allocations
/// delete their entries from the left of the index each take starts from, and a take walks
/// every deleted entry still there; the allocator vacuums `free_queue` every 1,024 operations,
/// which removes them. Autovacuum is off for the table here, so only the allocator's vacuums
/// clean it: without them the take read 66 pages after the 16,384 allocations below, with them
/// 6 or 7.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_take_reads_a_few_pages_after_many_allocations() {
    let Some((db, a)) = allocator().await else { return };
    let conn = db.pool_with(1).await;
    sqlx::query("ALTER TABLE kws_ipam.free_queue SET (autovacuum_enabled = false)")
        .execute(&conn)
        .await
        .expect("autovacuum off");
    let pool = testkit::create(&a, testkit::spec("piles", "10.9.0.0/16")).await;
    let a = std::sync::Arc::new(a);
    let callers: Vec<_> = (0..16)
        .map(|c| {
            let (a, pool) = (a.clone(), pool.clone());
            tokio::spawn(async move {
                for r in 0..1024 {
                    testkit::must_allocate(&*a, &pool, &format!("t{c}-{r}")).await;
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.expect("caller");
    }
    let vacuums = vacuums_done(&conn).await;
    let pages = fresh_take_pages(&conn, &pool).await;
    assert!(
        pages <= 25,
        "the take read {pages} pages after 16,384 allocations ({vacuums} vacuums)"
    );
}
