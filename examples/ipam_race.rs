//! The original IP allocation design (a Redis stack, else `SELECT max + 1`, no locks) and
//! `PgRedisAllocator` side by side under the same concurrent load; prints the duplicates each
//! produced.
//!
//! `cargo run --example ipam_race --features ipam,redis,postgres [-- TASKS ROUNDS]`
//! (defaults 16 tasks x 40 rounds). Needs `KWS_TEST_POSTGRES_URL` and `KWS_TEST_REDIS_URL`
//! (`eval "$(scripts/services env)"`); it uses a database and a key prefix of its own.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Instant,
};

use kws::core::DnsLabel;
use kws::ipam::{IpAllocator, LeaseOwner, PgRedisAllocator, PoolSpec, baseline::OriginalDesign};

/// Who holds what, as the callers saw it: a grant of an address someone else holds is a
/// duplicate (a release is recorded before it is sent, so a correct allocator never trips it).
#[derive(Default)]
struct Holders {
    held: Mutex<HashMap<IpAddr, String>>,
    duplicates: Mutex<Vec<(IpAddr, String, String)>>,
}

impl Holders {
    fn grant(&self, addr: IpAddr, owner: &str) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(prev) = held.insert(addr, owner.to_owned()) {
            let mut d = self.duplicates.lock().unwrap_or_else(|e| e.into_inner());
            d.push((addr, prev, owner.to_owned()));
        }
    }

    fn release(&self, addr: IpAddr, owner: &str) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.get(&addr).is_some_and(|o| o == owner) {
            held.remove(&addr);
        }
    }

    fn duplicates(&self) -> Vec<(IpAddr, String, String)> {
        self.duplicates.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let tasks = args.next().transpose()?.unwrap_or(16);
    let rounds = args.next().transpose()?.unwrap_or(40);
    let (Some(db), Some(redis)) = (kws_testenv::postgres().await, kws_testenv::redis().await)
    else {
        anyhow::bail!("needs KWS_TEST_POSTGRES_URL and KWS_TEST_REDIS_URL (scripts/services env)");
    };
    let conns = u32::try_from(tasks).unwrap_or(16);
    println!(
        "{tasks} tasks x {rounds} rounds of allocate, allocate, release one, on each design\n"
    );

    let original = OriginalDesign::connect(db.url(), conns, redis.url(), redis.prefix()).await?;
    let holders = Arc::new(Holders::default());
    let t = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (o, h) = (original.clone(), holders.clone());
        handles.push(tokio::spawn(async move {
            for r in 0..rounds {
                let (a, b) = (format!("t{task}-r{r}-a"), format!("t{task}-r{r}-b"));
                let x = o.allocate(&a).await?;
                h.grant(x, &a);
                let y = o.allocate(&b).await?;
                h.grant(y, &b);
                h.release(x, &a);
                o.release(x).await?;
            }
            anyhow::Ok(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    let seen = holders.duplicates();
    let rows = original.duplicate_rows().await?;
    println!(
        "original design (stack pop, else max + 1): {} duplicate grants, {rows} duplicate rows left, in {:?}",
        seen.len(),
        t.elapsed()
    );
    for (addr, a, b) in seen.iter().take(5) {
        println!("  {addr} granted to {b} while {a} held it");
    }

    let fixed = PgRedisAllocator::connect(db.url(), conns, redis.url(), redis.prefix()).await?;
    let pool = DnsLabel::parse("race")?;
    fixed.create_pool(PoolSpec::new(pool.clone(), "10.0.0.0/16".parse()?)).await?;
    let holders = Arc::new(Holders::default());
    let t = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (f, h, pool) = (fixed.clone(), holders.clone(), pool.clone());
        handles.push(tokio::spawn(async move {
            for r in 0..rounds {
                let (a, b) = (format!("t{task}-r{r}-a"), format!("t{task}-r{r}-b"));
                let x = f.allocate(&pool, &LeaseOwner::new(a.clone())?).await?.addr;
                h.grant(x, &a);
                let y = f.allocate(&pool, &LeaseOwner::new(b.clone())?).await?.addr;
                h.grant(y, &b);
                h.release(x, &a);
                f.release(&pool, x).await?;
            }
            anyhow::Ok(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    let seen = holders.duplicates();
    let problems = fixed.audit(&pool).await?.problems();
    println!(
        "PgRedisAllocator: {} duplicate grants, {} problems in the final state, in {:?}",
        seen.len(),
        problems.len(),
        t.elapsed()
    );
    anyhow::ensure!(
        seen.is_empty() && problems.is_empty(),
        "PgRedisAllocator: {seen:?} {problems:?}"
    );
    Ok(())
}
