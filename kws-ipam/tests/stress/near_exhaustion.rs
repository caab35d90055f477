//! Near exhaustion, across OS processes, with kill -9s (issue 24): 4 processes x 16 tasks on a
//! pool of about 125 addresses, each task holding up to 2 leases, so the pool is full most of
//! the time and `Exhausted` is a common answer. Each task allocates for new owners, allocates
//! again for an owner it holds, leases random addresses with `allocate_specific` and releases;
//! every call's start and end go to a shared log, which `checker` reads: no `Exhausted` while
//! an address was free and ready for the whole call, no FIFO inversion outside the batch
//! window, no duplicate, idempotent allocations. PostgreSQL must count no deadlock in the
//! test's database.

use std::{
    collections::HashMap,
    fs::OpenOptions,
    net::IpAddr,
    process::Child,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use kws_core::DnsLabel;
use kws_ipam::{Contention, Error, IpAllocator, LeaseOwner, PoolSpec, pool::PoolLayout};
use rand::{Rng, SeedableRng, rngs::SmallRng};

use crate::{
    checker,
    worker::{Job, line},
};

pub(crate) const PROCESSES: usize = 4;
pub(crate) const TASKS: usize = 16;
/// Leases a task holds at most: 64 tasks x 2 against about 125 addresses.
const HOLD: usize = 2;
/// Workers killed with SIGKILL during a run (each replaced).
const KILLS: usize = 8;

/// Operations per run: 24,000 (about half a minute per backend on the 2-core CI machine);
/// `KWS_IPAM_EXHAUSTION_OPS` sets another size.
fn ops() -> usize {
    match std::env::var("KWS_IPAM_EXHAUSTION_OPS") {
        Ok(v) => v.parse().unwrap_or_else(|e| panic!("KWS_IPAM_EXHAUSTION_OPS={v:?}: {e}")),
        Err(_) => 24_000,
    }
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// The usable addresses of a pool over `prefix` (the default gateway, no reservations).
fn usable(pool: &DnsLabel, prefix: &str) -> Vec<IpAddr> {
    let net: ipnet::IpNet = prefix.parse().expect("prefix");
    let layout = PoolLayout::new(&PoolSpec::new(pool.clone(), net)).expect("layout");
    let hosts = layout.segments().iter().flat_map(|s| s.first..=s.last);
    hosts.map(|h| layout.addr_of(h)).collect()
}

/// The allocator the job names, and a way to read its contention counts.
async fn open(job: &Job) -> (Arc<dyn IpAllocator>, Box<dyn Fn() -> Contention + Send + Sync>) {
    let opts = sqlx::postgres::PgPoolOptions::new().max_connections(4);
    let db = opts.connect(&job.pg_url).await.expect("postgres");
    match job.backend.as_str() {
        "postgres" => {
            let a = kws_ipam::PostgresAllocator::new(db).await.expect("postgres");
            (Arc::new(a.clone()), Box::new(move || a.contention()))
        }
        "pgredis" => {
            let client = redis::Client::open(job.redis_url.as_str()).expect("redis url");
            let a = kws_ipam::PgRedisAllocator::new(db, &client, &job.redis_prefix).await;
            let a = a.expect("pgredis");
            (Arc::new(a.clone()), Box::new(move || a.contention()))
        }
        other => panic!("no near-exhaustion run on {other}"),
    }
}

/// One worker process: `job.tasks` tasks, `job.ops` calls in all, each logged (see `checker`).
pub(crate) async fn work(job: Job) {
    let (alloc, contention) = open(&job).await;
    let pool = DnsLabel::parse(&job.pool).expect("pool");
    let addrs = Arc::new(usable(&pool, &job.prefix));
    let log = OpenOptions::new().append(true).create(true).open(&job.log).expect("log");
    let log = Arc::new(Mutex::new(log));
    let mut handles = Vec::new();
    for t in 0..job.tasks {
        let (alloc, pool, log, addrs) = (alloc.clone(), pool.clone(), log.clone(), addrs.clone());
        let (w, calls, hold) = (job.worker, job.ops / job.tasks, job.hold);
        handles.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(rand::random::<u64>());
            let mut held: Vec<(IpAddr, LeaseOwner)> = Vec::new();
            for n in 0..calls {
                let id = format!("{w}-{t}-{n}");
                let new_owner = LeaseOwner::new(format!("w{w}-t{t}-{n}")).expect("owner");
                let roll = rng.random_range(0..100);
                let start = |what: String| line(&log, &format!("B {id} {} {what}\n", now_ns()));
                let end = |what: &str| line(&log, &format!("E {id} {} {what}\n", now_ns()));
                if held.is_empty() || (roll < 45 && held.len() < hold) {
                    start(format!("A {new_owner}"));
                    match alloc.allocate(&pool, &new_owner).await {
                        Ok(l) => {
                            end(&format!("G {}", l.addr));
                            held.push((l.addr, new_owner));
                        }
                        Err(Error::Exhausted { .. }) => end("X"),
                        Err(e) => panic!("allocate: {e}"),
                    }
                } else if roll < 60 {
                    // Again for an owner this task holds: its lease, and nothing taken.
                    let (addr, owner) = &held[rng.random_range(0..held.len())];
                    start(format!("H {owner} {addr}"));
                    let l = alloc.allocate(&pool, owner).await.expect("allocate, held owner");
                    end(&format!("G {}", l.addr));
                } else if roll < 68 {
                    let addr = addrs[rng.random_range(0..addrs.len())];
                    start(format!("S {new_owner} {addr}"));
                    match alloc.allocate_specific(&pool, addr, &new_owner).await {
                        Ok(l) => {
                            end(&format!("G {}", l.addr));
                            held.push((l.addr, new_owner));
                        }
                        Err(Error::AlreadyAllocated { .. }) => end("T"),
                        Err(e) => panic!("allocate_specific {addr}: {e}"),
                    }
                } else {
                    let (addr, owner) = held.swap_remove(rng.random_range(0..held.len()));
                    start(format!("R {owner} {addr}"));
                    alloc.release(&pool, addr).await.unwrap_or_else(|e| panic!("release: {e}"));
                    end("F");
                }
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    let c = contention();
    let counts = (c.deadlocks, c.serialization_failures, c.batch_retries, c.lock_waits);
    line(&log, &format!("C {} {counts:?}\n", job.worker));
}

/// Runs `backend` near exhaustion on `prefix` with `quarantine`, then checks the log.
pub(crate) async fn run(backend: &str, prefix: &str, quarantine: Duration) {
    let Some(env) = crate::env(backend, prefix).await else { return };
    let job = Job {
        tasks: TASKS,
        ops: ops() / PROCESSES,
        mode: "exhaustion".into(),
        hold: HOLD,
        ..env.job.clone()
    };
    let pool = DnsLabel::parse(&job.pool).expect("pool");
    let alloc = crate::worker::open(&job, 2).await;
    let mut spec = PoolSpec::new(pool.clone(), prefix.parse().expect("prefix"));
    spec.quarantine = quarantine;
    alloc.create_pool(spec).await.expect("create_pool");
    let start_ns = now_ns();
    let started = Instant::now();
    let spawn = |w: usize| crate::spawn(&Job { worker: w, ..job.clone() });
    let mut children: Vec<(usize, Child)> = (0..PROCESSES).map(|w| (w, spawn(w))).collect();
    let mut rng = rand::rng();
    let log_len = || std::fs::metadata(&job.log).map_or(0, |m| m.len());
    while log_len() < 20_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = OpenOptions::new().append(true).open(&job.log).expect("log");
    let log = Mutex::new(log);
    for k in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..400))).await;
        let i = rng.random_range(0..children.len());
        let (w, child) = &mut children[i];
        // SIGKILL: the worker dies wherever it is, mid-call.
        child.kill().expect("kill -9");
        line(&log, &format!("K {w} {}\n", now_ns()));
        child.wait().expect("reap");
        let replacement = PROCESSES + k;
        children[i] = (replacement, spawn(replacement));
    }
    for (_, c) in &mut children {
        let status = c.wait().expect("wait");
        assert!(status.success(), "a worker failed: {status}");
    }
    let elapsed = started.elapsed();
    let text = std::fs::read_to_string(&job.log).expect("log");
    let audit = crate::audit(&job, &*alloc).await;
    assert_eq!(audit.problems(), Vec::<String>::new(), "{backend}: final state");
    let final_leases: HashMap<String, IpAddr> =
        audit.leases.iter().map(|l| (l.owner.to_string(), l.addr)).collect();
    let params = checker::Params {
        quarantine_ns: quarantine.as_nanos(),
        margin_ns: 2_000_000,
        start_ns,
        usable: usable(&pool, prefix),
        final_leases,
        excuse_killed_pops: backend == "pgredis",
    };
    let report = checker::check(&text, &params);
    let deadlocks = crate::deadlocks(&job.pg_url).await;
    let contention: Vec<&str> = text.lines().filter(|l| l.starts_with("C ")).collect();
    eprintln!(
        "{backend} near exhaustion: {} calls ({} grants, {} true Exhausted, {} in flight at a \
         kill) by {} processes x {TASKS} tasks in {elapsed:?}, {KILLS} kill -9; {} false \
         Exhausted, {} inversions ({} excused by a killed pop, deepest {}); PostgreSQL \
         deadlocks {deadlocks}; workers' (deadlocks, serialization failures, batch retries, \
         lock waits): {contention:?}",
        report.operations,
        report.grants,
        report.exhausted,
        report.killed_in_flight,
        PROCESSES + KILLS,
        report.false_exhausted.len(),
        report.inversions.len(),
        report.excused_inversions,
        report.deepest_inversion,
    );
    let first = |v: &[String]| v.iter().take(5).cloned().collect::<Vec<_>>();
    assert!(report.problems.is_empty(), "{backend}: {:?}", first(&report.problems));
    assert!(report.exhausted > 0, "{backend}: the pool never ran out, so nothing was tested");
    assert!(
        report.false_exhausted.is_empty(),
        "{backend}: {} false Exhausted, first {:?}",
        report.false_exhausted.len(),
        first(&report.false_exhausted)
    );
    assert!(
        report.inversions.is_empty(),
        "{backend}: {} FIFO inversions, first {:?}",
        report.inversions.len(),
        first(&report.inversions)
    );
    assert_eq!(deadlocks, 0, "{backend}: deadlocks PostgreSQL counted in the test database");
}
