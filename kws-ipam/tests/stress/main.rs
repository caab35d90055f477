//! Stress and crashes across OS processes, on Redis, PostgreSQL and PostgreSQL+Redis: the test
//! binary re-executes itself as worker processes (the ignored `stress_worker` test), each with
//! 32 tasks on one /16 pool, appending every grant and release to a shared log.
//!
//! - `*_stress`: 8 processes x 32 tasks, 200,000 mixed operations in all (see `ops`); the log replays
//!   without a duplicate, the final state matches it, and leased + free + never handed out =
//!   capacity.
//! - `*_kill9`: the same load while a random worker is killed with SIGKILL at 20 random
//!   moments (and replaced); after reconcile no address is both free and leased and none is
//!   lost.
//! - On PostgreSQL and PostgreSQL+Redis, PostgreSQL counts no deadlock in the test's database.
//! - `*_near_exhaustion`: a small pool kept full, with kill -9s, every call checked against
//!   the contract (see `near_exhaustion` and `checker`).
#![cfg(all(feature = "postgres", feature = "redis"))]

mod checker;
mod near_exhaustion;
mod replay;
mod worker;

use std::{
    collections::HashSet,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use kws_core::DnsLabel;
use kws_ipam::{Audit, IpAllocator, PoolSpec};
use rand::Rng;
use worker::Job;

const PROCESSES: usize = 8;
const TASKS: usize = 32;
const KILLS: usize = 20;

/// Operations in all, on every backend: 200,000 (the six tests together take about a minute on
/// the 2-core CI machine). `KWS_IPAM_STRESS_OPS` sets another size; a value that is not a
/// number stops the test instead of running the default silently.
fn ops() -> usize {
    match std::env::var("KWS_IPAM_STRESS_OPS") {
        Ok(v) => v.parse().unwrap_or_else(|e| panic!("KWS_IPAM_STRESS_OPS={v:?}: {e}")),
        Err(_) => 200_000,
    }
}

#[test]
#[ignore = "entry point of the worker processes the stress tests start"]
fn stress_worker() {
    let job = Job::from_env().expect("KWS_IPAM_STRESS_* variables (run by the stress tests)");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(worker::run(job));
}

fn spawn(job: &Job) -> Child {
    let exe = std::env::current_exe().expect("test binary");
    Command::new(exe)
        .args(["stress_worker", "--exact", "--ignored", "--nocapture", "--test-threads", "1"])
        .envs(job.env())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn a worker")
}

struct Env {
    _db: kws_testenv::TestDb,
    _redis: kws_testenv::TestRedis,
    job: Job,
    _dir: tempfile::TempDir,
}

async fn env(backend: &str, prefix: &str) -> Option<Env> {
    let db = kws_testenv::postgres().await?;
    let redis = kws_testenv::redis().await?;
    let dir = tempfile::tempdir().expect("tempdir");
    let job = Job {
        backend: backend.into(),
        pg_url: db.url().into(),
        redis_url: redis.url().into(),
        redis_prefix: redis.prefix().into(),
        pool: "stress".into(),
        prefix: prefix.into(),
        worker: 0,
        tasks: TASKS,
        ops: ops() / PROCESSES,
        log: dir.path().join("grants.log").display().to_string(),
        mode: "mixed".into(),
        hold: 0,
    };
    Some(Env { _db: db, _redis: redis, job, _dir: dir })
}

/// Deadlocks PostgreSQL counted in the database at `url` so far. A backend reports its counts
/// within a second of its last transaction (or when it exits), so this waits that long first.
async fn deadlocks(url: &str) -> i64 {
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let db = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url);
    let db = db.await.expect("postgres");
    sqlx::query_scalar("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(&db)
        .await
        .expect("pg_stat_database")
}

async fn audit(job: &Job, alloc: &dyn IpAllocator) -> Audit {
    let _ = alloc;
    let pool = DnsLabel::parse(&job.pool).expect("pool");
    match job.backend.as_str() {
        "redis" => {
            let client = redis::Client::open(job.redis_url.as_str()).expect("url");
            let a = kws_ipam::RedisAllocator::new(&client, &job.redis_prefix).await.expect("redis");
            a.audit(&pool).await.expect("audit")
        }
        _ => {
            let db = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&job.pg_url);
            let client = redis::Client::open(job.redis_url.as_str()).expect("url");
            let a =
                kws_ipam::PgRedisAllocator::new(db.await.expect("pg"), &client, &job.redis_prefix);
            let a = a.await.expect("pgredis");
            // Rebuild the fast path as after a crash; PostgreSQL is the truth either way.
            a.reconcile(&pool).await.expect("reconcile");
            a.audit(&pool).await.expect("audit")
        }
    }
}

async fn stress(backend: &str, prefix: &str, kills: usize) {
    let Some(env) = env(backend, prefix).await else { return };
    let job = env.job.clone();
    let alloc = worker::open(&job, 2).await;
    let net: ipnet::IpNet = prefix.parse().expect("prefix");
    let pool = DnsLabel::parse(&job.pool).expect("pool");
    alloc.create_pool(PoolSpec::new(pool.clone(), net)).await.expect("create_pool");
    let started = Instant::now();
    let mut children: Vec<Child> =
        (0..PROCESSES).map(|w| spawn(&Job { worker: w, ..job.clone() })).collect();
    let mut next_worker = PROCESSES;
    let mut killed = 0;
    let mut rng = rand::rng();
    // Kill only once the workers are in full swing.
    while kills > 0 && std::fs::metadata(&job.log).map_or(0, |m| m.len()) < 20_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while killed < kills {
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..250))).await;
        let i = rng.random_range(0..children.len());
        // SIGKILL: the worker dies wherever it is, mid-operation.
        children[i].kill().expect("kill -9");
        children[i].wait().expect("reap");
        killed += 1;
        children[i] = spawn(&Job { worker: next_worker, ..job.clone() });
        next_worker += 1;
    }
    if kills > 0 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for c in &mut children {
            let _ = c.kill();
            let _ = c.wait();
        }
    } else {
        for c in &mut children {
            let status = c.wait().expect("wait");
            assert!(status.success(), "a worker failed: {status}");
        }
    }
    let elapsed = started.elapsed();
    let log = std::fs::read_to_string(&job.log).expect("log");
    let holders =
        replay::replay(&log).unwrap_or_else(|e| panic!("{backend}: duplicate grant: {e}"));
    let lines = log.lines().count();
    let audit = audit(&job, &*alloc).await;
    assert_eq!(audit.problems(), Vec::<String>::new(), "{backend}: final state");
    // The counters behind usage() moved in the same transactions (script calls) as the leases.
    let usage = alloc.usage(&pool).await.expect("usage");
    assert_eq!(usage.allocated, audit.leases.len() as u128, "{backend}: usage counts the leases");
    let deadlocks = if backend == "redis" { 0 } else { deadlocks(&job.pg_url).await };
    assert_eq!(deadlocks, 0, "{backend}: deadlocks PostgreSQL counted in the test database");
    if kills == 0 {
        let live: HashSet<(std::net::IpAddr, String)> =
            audit.leases.iter().map(|l| (l.addr, l.owner.to_string())).collect();
        let logged: HashSet<(std::net::IpAddr, String)> = holders.into_iter().collect();
        assert_eq!(live, logged, "{backend}: final leases are those the log leaves");
        // Every allocate_specific miss is not logged; every other operation is one line.
        let want = ops();
        assert!(lines >= want * 9 / 10, "{backend}: {lines} logged operations, wanted ~{want}");
    }
    eprintln!(
        "{backend}: {lines} operations logged by {} processes x {TASKS} tasks in {elapsed:?}, \
         {kills} kill -9; final leased {} free {} never handed out {}",
        next_worker,
        audit.leases.len(),
        audit.free.len(),
        audit.never_handed_out
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stress() {
    stress("redis", "10.60.0.0/16", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_kill9() {
    stress("redis", "10.61.0.0/16", KILLS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stress() {
    stress("postgres", "10.62.0.0/16", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kill9() {
    stress("postgres", "10.63.0.0/16", KILLS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_redis_stress() {
    stress("pgredis", "10.64.0.0/16", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_redis_kill9() {
    stress("pgredis", "10.65.0.0/16", KILLS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_near_exhaustion() {
    // 64 tasks x 2 leases against 125 addresses, some of them in quarantine at any moment.
    near_exhaustion::run("postgres", "10.66.0.0/25", Duration::from_millis(100), 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_redis_near_exhaustion() {
    // 64 tasks x 3 leases against 126 addresses.
    near_exhaustion::run("pgredis", "fd00:67::/121", Duration::ZERO, 3).await;
}
