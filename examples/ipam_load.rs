//! Load runner: allocations per second and p50/p99 latency of `RedisAllocator` at 1, 8 and 32
//! connections and `PostgresAllocator` at 1, 8 and 16, with `redis-benchmark` PING and
//! `pgbench -N` run beside it at the same client counts, in the same run.
//!
//! `cargo run --release --example ipam_load --features ipam,redis,postgres [-- SECONDS]`
//! (default 1 second per step; docs/PERFORMANCE.md uses 10). Needs `KWS_TEST_POSTGRES_URL`
//! and `KWS_TEST_REDIS_URL` (`eval "$(scripts/services env)"`), `redis-benchmark` and `pgbench`.
//!
//! Each connection runs one closed loop of allocate then release (each one round trip, one
//! transaction); "ops/s" counts both, "allocs/s" the allocations; latency is of allocate.

use std::{
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use kws::core::DnsLabel;
use kws::ipam::{IpAllocator, LeaseOwner, PoolSpec, PostgresAllocator, RedisAllocator};

struct Step {
    allocs: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

async fn drive(
    conns: Vec<Arc<dyn IpAllocator>>,
    pool: DnsLabel,
    secs: f64,
) -> anyhow::Result<Step> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut handles = Vec::new();
    for (c, a) in conns.into_iter().enumerate() {
        let pool = pool.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut n = 0usize;
            while Instant::now() < deadline {
                let owner = LeaseOwner::new(format!("c{c}-{n}"))?;
                let t = Instant::now();
                let lease = a.allocate(&pool, &owner).await?;
                lat.push(t.elapsed());
                a.release(&pool, lease.addr).await?;
                n += 1;
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for h in handles {
        lat.extend(h.await??);
    }
    let elapsed = start.elapsed();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied()
    };
    Ok(Step {
        allocs: lat.len(),
        elapsed,
        p50: pct(0.50).unwrap_or_default(),
        p99: pct(0.99).unwrap_or_default(),
    })
}

fn redis_ping(url: &str, clients: usize, secs: f64) -> anyhow::Result<f64> {
    let rest = url.trim_start_matches("redis://").trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "6379"));
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

fn row(backend: &str, clients: usize, s: &Step, beside: &str, rate: f64) {
    let allocs = s.allocs as f64 / s.elapsed.as_secs_f64();
    println!(
        "| {backend} | {clients} | {allocs:.0} | {:.0} | {:.2} | {:.2} | {beside} {rate:.0} | {:.2} |",
        2.0 * allocs,
        s.p50.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3,
        2.0 * allocs / rate
    );
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

    println!(
        "| backend | connections | allocs/s | ops/s | p50 ms | p99 ms | beside (same clients) | ops / beside |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (i, clients) in [1usize, 8, 32].into_iter().enumerate() {
        let mut conns: Vec<Arc<dyn IpAllocator>> = Vec::new();
        for _ in 0..clients {
            conns.push(Arc::new(RedisAllocator::connect(redis.url(), redis.prefix()).await?));
        }
        let pool = DnsLabel::parse(&format!("load-redis-{i}"))?;
        let net = format!("10.{}.0.0/16", 100 + i).parse()?;
        conns[0].create_pool(PoolSpec::new(pool.clone(), net)).await?;
        let step = drive(conns, pool, secs).await?;
        let ping = redis_ping(redis.url(), clients, secs)?;
        row("Redis", clients, &step, "PING/s", ping);
    }
    for (i, clients) in [1usize, 8, 16].into_iter().enumerate() {
        let a = PostgresAllocator::connect(db.url(), u32::try_from(clients)?).await?;
        let pool = DnsLabel::parse(&format!("load-pg-{i}"))?;
        let net = format!("10.{}.0.0/16", 110 + i).parse()?;
        a.create_pool(PoolSpec::new(pool.clone(), net)).await?;
        let a: Arc<dyn IpAllocator> = Arc::new(a);
        let step = drive(vec![a; clients], pool, secs).await?;
        let tps = pgbench(bench_db.url(), clients, secs)?;
        row("PostgreSQL", clients, &step, "pgbench -N tps", tps);
    }
    Ok(())
}
