//! Load runner: allocations per second and p50/p99 latency of `RedisAllocator` at 1, 8 and 32
//! concurrent callers and `PostgresAllocator` at 1, 8 and 16 (over as many PostgreSQL
//! connections), with `redis-benchmark` PING and `pgbench -N` run beside it at the same client
//! counts, in the same run; then the top count again with group commit off (one operation per
//! script call or per transaction), for comparison.
//!
//! `cargo run --release --example ipam_load --no-default-features --features
//! ipam,redis,postgres [-- SECONDS]` (default 1 second per step; docs/PERFORMANCE.md uses 5).
//! Needs `KWS_TEST_POSTGRES_URL` and `KWS_TEST_REDIS_URL` (`eval "$(scripts/services env)"`),
//! `redis-benchmark` and `pgbench`. `KWS_IPAM_LOAD_REDIS_GROUP=ITEMS,IN_FLIGHT` and
//! `KWS_IPAM_LOAD_PG_GROUP=ITEMS,IN_FLIGHT` override the group-commit bounds;
//! `KWS_IPAM_LOAD_ONLY=redis` (or `postgres`) runs one backend; `KWS_IPAM_LOAD_ALLOC_ONLY=1`
//! runs only the allocations-only step of each.
//!
//! The callers of a step share one allocator instance (as the tasks of one service do), so
//! their concurrent operations are coalesced: each batch is one script call on Redis, one
//! transaction with one durable commit on PostgreSQL, and each caller returns only after the
//! batch holding its operation has committed. Each caller runs one closed loop of allocate
//! then release; "ops/s" counts both, "allocs/s" the allocations alone; latency is of allocate.
//! A last step per backend runs allocations only (new owners, fresh addresses from the cursor of
//! a /10, as a DHCP server's lease-rate benchmark does), where every operation is an allocation.
//! PostgreSQL ends with a reclaim step: each caller allocates and releases, then leases with
//! `allocate_specific` the address the next caller released last and releases it again (a user
//! taking back an address another just gave up), so concurrent batches cross releases and
//! specific allocations of the same addresses; latency is of allocate and allocate_specific.
//! The deadlocks PostgreSQL counted in the runner's database are printed after the steps.

use std::{
    collections::HashMap,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use kws::core::DnsLabel;
use kws::ipam::{Error, IpAllocator, LeaseOwner, PoolSpec, PostgresAllocator, RedisAllocator};

struct Step {
    /// Allocations made (leases granted).
    allocs: usize,
    /// Operations run (allocations, releases, refused `allocate_specific` calls).
    ops: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// What each caller's closed loop does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loop {
    /// Allocate, then release the address again.
    Mixed,
    /// Allocate only.
    AllocOnly,
    /// Allocate and release, then `allocate_specific` the address the next caller released
    /// last and, when granted, release it.
    Reclaim,
}

/// Each caller's closed loop (see `Loop`); latencies are of allocate and allocate_specific.
async fn drive(
    conns: Vec<Arc<dyn IpAllocator>>,
    pool: DnsLabel,
    secs: f64,
    what: Loop,
) -> anyhow::Result<Step> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let callers = conns.len();
    let released: Arc<Vec<std::sync::Mutex<Option<std::net::IpAddr>>>> =
        Arc::new((0..callers).map(|_| std::sync::Mutex::new(None)).collect());
    let mut handles = Vec::new();
    for (c, a) in conns.into_iter().enumerate() {
        let (pool, released) = (pool.clone(), released.clone());
        handles.push(tokio::spawn(async move {
            let (mut lat, mut allocs, mut ops) = (Vec::new(), 0usize, 0usize);
            let mut n = 0usize;
            while Instant::now() < deadline {
                let owner = LeaseOwner::new(format!("c{c}-{n}"))?;
                let t = Instant::now();
                let lease = a.allocate(&pool, &owner).await?;
                lat.push(t.elapsed());
                (allocs, ops) = (allocs + 1, ops + 1);
                if what != Loop::AllocOnly {
                    a.release(&pool, lease.addr).await?;
                    ops += 1;
                }
                if what == Loop::Reclaim {
                    let slot = |i: usize| released[i].lock().map_err(|_| anyhow::anyhow!("slot"));
                    *slot(c)? = Some(lease.addr);
                    let next = *slot((c + 1) % callers)?;
                    if let Some(addr) = next {
                        let owner = LeaseOwner::new(format!("c{c}-{n}-again"))?;
                        let t = Instant::now();
                        let got = a.allocate_specific(&pool, addr, &owner).await;
                        lat.push(t.elapsed());
                        ops += 1;
                        match got {
                            Ok(_) => {
                                a.release(&pool, addr).await?;
                                (allocs, ops) = (allocs + 1, ops + 1);
                            }
                            Err(Error::AlreadyAllocated { .. }) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                n += 1;
            }
            anyhow::Ok((lat, allocs, ops))
        }));
    }
    let (mut lat, mut allocs, mut ops) = (Vec::new(), 0, 0);
    for h in handles {
        let (l, a, o) = h.await??;
        lat.extend(l);
        (allocs, ops) = (allocs + a, ops + o);
    }
    let elapsed = start.elapsed();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied()
    };
    Ok(Step {
        allocs,
        ops,
        elapsed,
        p50: pct(0.50).unwrap_or_default(),
        p99: pct(0.99).unwrap_or_default(),
        max: lat.last().copied().unwrap_or_default(),
    })
}

fn redis_ping(url: &str, clients: usize, secs: f64) -> anyhow::Result<f64> {
    let (host, port) = host_port(url);
    // About `secs` of PINGs at the rate this machine manages (~50k/s per client count, capped).
    let n = ((secs * 60_000.0) as usize).max(10_000);
    let out = Command::new("redis-benchmark")
        .args(["-h", host, "-p", port, "-c", &clients.to_string(), "-n", &n.to_string()])
        .args(["-t", "ping", "-q"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "PING_INLINE: 50000.00 requests per second, p50=..." then "PING_MBULK: ..."
    let line = text
        .split(['\n', '\r'])
        .rfind(|l| l.starts_with("PING_MBULK"))
        .ok_or_else(|| anyhow::anyhow!("redis-benchmark said: {text}"))?;
    let rate = line.split_whitespace().nth(1).unwrap_or("0").parse()?;
    Ok(rate)
}

fn pgbench(url: &str, clients: usize, secs: f64) -> anyhow::Result<f64> {
    let out = Command::new("pgbench")
        .args(["-N", "-n", "-c", &clients.to_string(), "-j", &clients.min(2).to_string()])
        .args(["-T", &format!("{}", secs.ceil() as u64), url])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("tps = ")).ok_or_else(|| {
        anyhow::anyhow!("pgbench said: {text}{}", String::from_utf8_lossy(&out.stderr))
    })?;
    Ok(line.trim_start_matches("tps = ").split_whitespace().next().unwrap_or("0").parse()?)
}

/// CPU time (user + system) of process `pid` so far, from `/proc/PID/stat` (10 ms ticks).
fn proc_cpu(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may hold spaces): state is 0, utime 11, stime 12.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> =
        rest.split_whitespace().skip(11).take(2).filter_map(|x| x.parse().ok()).collect();
    Duration::from_millis(10 * f.iter().sum::<u64>())
}

/// CPU of the PostgreSQL backends serving `db`'s database, by pid.
async fn pg_backends_cpu(db: &sqlx::PgPool) -> anyhow::Result<HashMap<u32, Duration>> {
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database() AND backend_type = 'client backend'",
    )
    .fetch_all(db)
    .await?;
    Ok(pids.into_iter().filter_map(|p| u32::try_from(p).ok()).map(|p| (p, proc_cpu(p))).collect())
}

fn pg_cpu_since(before: &HashMap<u32, Duration>, after: &HashMap<u32, Duration>) -> Duration {
    after.iter().map(|(p, t)| t.saturating_sub(before.get(p).copied().unwrap_or_default())).sum()
}

/// CPU the Redis server has used so far (`redis-cli INFO cpu`).
fn redis_cpu(url: &str) -> anyhow::Result<Duration> {
    let (host, port) = host_port(url);
    let out = Command::new("redis-cli").args(["-h", host, "-p", port, "INFO", "cpu"]).output()?;
    let secs: f64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("used_cpu_sys:") || l.starts_with("used_cpu_user:"))
        .filter_map(|l| l.split_once(':').and_then(|(_, v)| v.trim().parse::<f64>().ok()))
        .sum();
    Ok(Duration::from_secs_f64(secs))
}

fn host_port(url: &str) -> (&str, &str) {
    let rest = url.trim_start_matches("redis://").trim_end_matches('/');
    rest.rsplit_once(':').unwrap_or((rest, "6379"))
}

/// `items,in_flight` from the environment variable `var`, if set.
fn limits(var: &str) -> anyhow::Result<Option<(usize, usize)>> {
    let Ok(v) = std::env::var(var) else { return Ok(None) };
    let (a, b) = v.split_once(',').ok_or_else(|| anyhow::anyhow!("{var}: want ITEMS,IN_FLIGHT"))?;
    Ok(Some((a.trim().parse()?, b.trim().parse()?)))
}

/// One table row; `counts` are the batches and operations the allocator ran in the step, `cpu`
/// the CPU time of this process and of the server (its backends, on PostgreSQL) in the step.
fn row(
    backend: &str,
    callers: usize,
    s: &Step,
    counts: (u64, u64),
    cpu: (Duration, Duration),
    beside: (&str, f64),
) {
    let secs = s.elapsed.as_secs_f64();
    let (allocs, ops) = (s.allocs as f64 / secs, s.ops as f64 / secs);
    let per_batch = counts.1 as f64 / counts.0.max(1) as f64;
    let n = s.ops.max(1) as f64;
    let (what, rate) = beside;
    println!(
        "| {backend} | {callers} | {allocs:.0} | {ops:.0} | {per_batch:.1} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {what} {rate:.0} | {:.2} | {:.2} |",
        s.p50.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3,
        s.max.as_secs_f64() * 1e3,
        cpu.0.as_secs_f64() * 1e6 / n,
        cpu.1.as_secs_f64() * 1e6 / n,
        allocs / rate,
        ops / rate,
    );
}

/// A one-connection pool to `url`.
async fn one_connection(url: &str) -> anyhow::Result<sqlx::PgPool> {
    Ok(sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await?)
}

/// Deadlocks PostgreSQL counted in `db`'s database so far (a backend reports its counts within
/// a second of its last transaction, so this waits that long first).
async fn deadlocks(db: &sqlx::PgPool) -> anyhow::Result<i64> {
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let n = sqlx::query_scalar(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(db)
    .await?;
    Ok(n)
}

fn delta(after: (u64, u64), before: (u64, u64)) -> (u64, u64) {
    (after.0 - before.0, after.1 - before.1)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs: f64 = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(1.0);
    let (Some(db), Some(redis)) = (kws_testenv::postgres().await, kws_testenv::redis().await)
    else {
        anyhow::bail!("needs KWS_TEST_POSTGRES_URL and KWS_TEST_REDIS_URL (scripts/services env)");
    };
    let bench_db = kws_testenv::postgres().await.ok_or_else(|| anyhow::anyhow!("postgres"))?;
    let init = Command::new("pgbench").args(["-i", "-q", "-s", "4", bench_db.url()]).output()?;
    anyhow::ensure!(init.status.success(), "pgbench -i: {}", String::from_utf8_lossy(&init.stderr));
    let redis_limits = limits("KWS_IPAM_LOAD_REDIS_GROUP")?;
    let pg_limits = limits("KWS_IPAM_LOAD_PG_GROUP")?;

    println!(
        "| backend | callers | allocs/s | ops/s | ops per batch | p50 ms | p99 ms | max ms | client CPU µs/op | server CPU µs/op | beside (same clients) | allocs / beside | ops / beside |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    // The last step runs without group commit (one operation per script call), for comparison.
    let only = std::env::var("KWS_IPAM_LOAD_ONLY").unwrap_or_default();
    let alloc_only = std::env::var_os("KWS_IPAM_LOAD_ALLOC_ONLY").is_some();
    // (callers, group-commit bounds, loop)
    let steps = [
        (1usize, None, Loop::Mixed),
        (8, None, Loop::Mixed),
        (32, None, Loop::Mixed),
        (32, Some((1, 32)), Loop::Mixed),
        (32, None, Loop::AllocOnly),
    ];
    for (i, (callers, fixed, what)) in steps.into_iter().enumerate() {
        if only == "postgres" {
            break;
        }
        if alloc_only && what != Loop::AllocOnly {
            continue;
        }
        let mut a = RedisAllocator::connect(redis.url(), redis.prefix()).await?;
        if let Some((items, in_flight)) = fixed.or(redis_limits) {
            a = a.with_group_commit(items, in_flight);
        }
        let pool = DnsLabel::parse(&format!("load-redis-{i}"))?;
        let net = match what {
            Loop::AllocOnly => "100.64.0.0/10".into(),
            _ => format!("10.{}.0.0/16", 100 + i),
        };
        a.create_pool(PoolSpec::new(pool.clone(), net.parse()?)).await?;
        let before = a.group_commit_counts();
        let shared: Arc<dyn IpAllocator> = Arc::new(a.clone());
        let (me, server) = (proc_cpu(std::process::id()), redis_cpu(redis.url())?);
        let step = drive(vec![shared; callers], pool, secs, what).await?;
        let me = proc_cpu(std::process::id()) - me;
        let server = redis_cpu(redis.url())? - server;
        let counts = delta(a.group_commit_counts(), before);
        let ping = redis_ping(redis.url(), callers, secs)?;
        let name = match (fixed.is_some(), what) {
            (true, _) => "Redis, 1 op per call",
            (false, Loop::AllocOnly) => "Redis, allocations only",
            (false, _) => "Redis",
        };
        row(name, callers, &step, counts, (me, server), ("PING/s", ping));
    }
    let steps = [
        (1usize, None, Loop::Mixed),
        (8, None, Loop::Mixed),
        (16, None, Loop::Mixed),
        (16, Some((1, 16)), Loop::Mixed),
        (16, None, Loop::AllocOnly),
        (16, None, Loop::Reclaim),
    ];
    for (i, (callers, fixed, what)) in steps.into_iter().enumerate() {
        if only == "redis" {
            break;
        }
        if alloc_only && what != Loop::AllocOnly {
            continue;
        }
        let mut a = PostgresAllocator::connect(db.url(), u32::try_from(callers)?).await?;
        if let Some((items, in_flight)) = fixed.or(pg_limits) {
            a = a.with_group_commit(items, in_flight);
        }
        let pool = DnsLabel::parse(&format!("load-pg-{i}"))?;
        let net = match what {
            Loop::AllocOnly => "100.128.0.0/10".into(),
            _ => format!("10.{}.0.0/16", 110 + i),
        };
        a.create_pool(PoolSpec::new(pool.clone(), net.parse()?)).await?;
        let before = a.group_commit_counts();
        let shared: Arc<dyn IpAllocator> = Arc::new(a.clone());
        let (me, server) = (proc_cpu(std::process::id()), pg_backends_cpu(a.db()).await?);
        let step = drive(vec![shared; callers], pool, secs, what).await?;
        let me = proc_cpu(std::process::id()) - me;
        let server = pg_cpu_since(&server, &pg_backends_cpu(a.db()).await?);
        let counts = delta(a.group_commit_counts(), before);
        let tps = pgbench(bench_db.url(), callers, secs)?;
        let name = match (fixed.is_some(), what) {
            (true, _) => "PostgreSQL, 1 op per commit",
            (false, Loop::AllocOnly) => "PostgreSQL, allocations only",
            (false, Loop::Reclaim) => "PostgreSQL, reclaim",
            (false, Loop::Mixed) => "PostgreSQL",
        };
        row(name, callers, &step, counts, (me, server), ("pgbench -N tps", tps));
    }
    if only != "redis" {
        let db = one_connection(db.url()).await?;
        println!("PostgreSQL deadlocks in the runner's database: {}", deadlocks(&db).await?);
    }
    Ok(())
}
