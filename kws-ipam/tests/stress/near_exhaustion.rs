//! Near exhaustion, across OS processes, with kill -9s (issue 24): 4 processes x 16 tasks on a
//! pool of about 125 addresses, each task holding up to `hold` leases (2 with a quarantine, 3
//! without), so the pool is full most of the time and `Exhausted` is a common answer. Each task
//! allocates for new owners, allocates again for an owner it holds, leases with
//! `allocate_specific` an address its process released last (or a random one) and releases;
//! every call's start and end go to a shared log, which `checker` reads: no `Exhausted` while
//! an address was free and ready for the whole call, no FIFO inversion outside the batch
//! window, no duplicate, idempotent allocations. On PostgreSQL+Redis the fast queue is also
//! deleted 8 times during the run, so allocations go through PostgreSQL's queue too.
//! PostgreSQL must count no deadlock in the test's database.

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
    // The addresses this process released last: allocate_specific takes one back half the
    // time, so batches cross releases and specific allocations of the same addresses.
    let recent: Arc<Mutex<Vec<IpAddr>>> = Arc::default();
    let mut handles = Vec::new();
    for t in 0..job.tasks {
        let (alloc, pool, log, addrs) = (alloc.clone(), pool.clone(), log.clone(), addrs.clone());
        let recent = recent.clone();
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
                } else if roll < 62 {
                    // Again for an owner this task holds: its lease, and nothing taken.
                    let (addr, owner) = &held[rng.random_range(0..held.len())];
                    start(format!("H {owner} {addr}"));
                    let l = alloc.allocate(&pool, owner).await.expect("allocate, held owner");
                    end(&format!("G {}", l.addr));
                } else if roll < 72 {
                    let again = {
                        let r = recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        r.get(rng.random_range(0..r.len().max(1) * 2)).copied()
                    };
                    let addr = again.unwrap_or_else(|| addrs[rng.random_range(0..addrs.len())]);
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
                    let mut r = recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    r.insert(0, addr);
                    r.truncate(8);
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

/// Runs `backend` near exhaustion on `prefix` with `quarantine`, each task holding up to `hold`
/// leases, then checks the log.
pub(crate) async fn run(backend: &str, prefix: &str, quarantine: Duration, hold: usize) {
    let Some(env) = crate::env(backend, prefix).await else { return };
    let job = Job {
        tasks: TASKS,
        ops: ops() / PROCESSES,
        mode: "exhaustion".into(),
        hold,
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
    // PostgreSQL+Redis also loses its fast queue between the kills (as when Redis restarts
    // without its data): allocations then go through PostgreSQL's queue, where issue 24 was.
    let fast_queue = match backend {
        "pgredis" => {
            let a = kws_ipam::PgRedisAllocator::connect(
                &job.pg_url,
                1,
                &job.redis_url,
                job.redis_prefix.as_str(),
            );
            Some(a.await.expect("pgredis").fast_queue_key(&pool))
        }
        _ => None,
    };
    let client = redis::Client::open(job.redis_url.as_str()).expect("redis url");
    let mut redis = client.get_multiplexed_async_connection().await.expect("redis");
    for k in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..400))).await;
        if let Some(key) = &fast_queue {
            redis::cmd("DEL").arg(key).query_async::<i64>(&mut redis).await.expect("DEL");
            line(&log, &format!("L {}\n", now_ns()));
            tokio::time::sleep(Duration::from_millis(rng.random_range(50..200))).await;
        }
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
        excuse_in_flight_pops: fast_queue.is_some(),
    };
    let report = checker::check(&text, &params);
    let deadlocks = crate::deadlocks(&job.pg_url).await;
    let contention: Vec<&str> = text.lines().filter(|l| l.starts_with("C ")).collect();
    eprintln!(
        "{backend} near exhaustion: {} calls ({} grants, {} true Exhausted, {} in flight at a \
         kill) by {} processes x {TASKS} tasks in {elapsed:?}, {KILLS} kill -9; {} false \
         Exhausted, {} inversions ({} excused by a pop in flight or a lost fast queue, deepest {}); PostgreSQL \
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
    let failed = !(report.problems.is_empty()
        && report.false_exhausted.is_empty()
        && report.inversions.is_empty());
    if failed {
        // The log goes with the test's temporary folder: keep a copy to read.
        let kept = std::env::temp_dir().join(format!("kws-ipam-near-exhaustion-{backend}.log"));
        if std::fs::write(&kept, &text).is_ok() {
            eprintln!("{backend}: the log is kept in {}", kept.display());
        }
    }
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
