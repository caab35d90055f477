//! A worker process: `tasks` tasks on one allocator, mixed operations, every grant and every
//! release intent appended to a shared log (one `write` per line, `O_APPEND`).

use std::{
    fs::OpenOptions,
    io::Write,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use kws_core::DnsLabel;
use kws_ipam::{Error, IpAllocator, LeaseOwner};
use rand::{Rng, SeedableRng, rngs::SmallRng};

/// What a worker is told through its environment.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) backend: String,
    pub(crate) pg_url: String,
    pub(crate) redis_url: String,
    pub(crate) redis_prefix: String,
    pub(crate) pool: String,
    pub(crate) prefix: String,
    pub(crate) worker: usize,
    pub(crate) tasks: usize,
    pub(crate) ops: usize,
    pub(crate) log: String,
    /// `mixed` (the stress load) or `exhaustion` (near exhaustion, see `near_exhaustion`).
    pub(crate) mode: String,
    /// In `exhaustion`, the most leases one task holds at once.
    pub(crate) hold: usize,
}

const VARS: [&str; 12] = [
    "KWS_IPAM_STRESS_BACKEND",
    "KWS_IPAM_STRESS_PG_URL",
    "KWS_IPAM_STRESS_REDIS_URL",
    "KWS_IPAM_STRESS_REDIS_PREFIX",
    "KWS_IPAM_STRESS_POOL",
    "KWS_IPAM_STRESS_PREFIX",
    "KWS_IPAM_STRESS_WORKER",
    "KWS_IPAM_STRESS_TASKS",
    "KWS_IPAM_STRESS_OPS",
    "KWS_IPAM_STRESS_LOG",
    "KWS_IPAM_STRESS_MODE",
    "KWS_IPAM_STRESS_HOLD",
];

impl Job {
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        let values = [
            self.backend.clone(),
            self.pg_url.clone(),
            self.redis_url.clone(),
            self.redis_prefix.clone(),
            self.pool.clone(),
            self.prefix.clone(),
            self.worker.to_string(),
            self.tasks.to_string(),
            self.ops.to_string(),
            self.log.clone(),
            self.mode.clone(),
            self.hold.to_string(),
        ];
        VARS.into_iter().zip(values).collect()
    }

    pub(crate) fn from_env() -> Option<Self> {
        let v: Vec<String> = VARS.iter().map(|k| std::env::var(k).ok()).collect::<Option<_>>()?;
        let num = |s: &str| s.parse::<usize>().expect("a number");
        Some(Self {
            backend: v[0].clone(),
            pg_url: v[1].clone(),
            redis_url: v[2].clone(),
            redis_prefix: v[3].clone(),
            pool: v[4].clone(),
            prefix: v[5].clone(),
            worker: num(&v[6]),
            tasks: num(&v[7]),
            ops: num(&v[8]),
            log: v[9].clone(),
            mode: v[10].clone(),
            hold: num(&v[11]),
        })
    }
}

/// Opens the allocator the job names.
pub(crate) async fn open(job: &Job, connections: u32) -> Arc<dyn IpAllocator> {
    let pg = || async {
        let opts = sqlx::postgres::PgPoolOptions::new().max_connections(connections);
        opts.connect(&job.pg_url).await.expect("postgres")
    };
    match job.backend.as_str() {
        "redis" => {
            let client = redis::Client::open(job.redis_url.as_str()).expect("redis url");
            Arc::new(
                kws_ipam::RedisAllocator::new(&client, &job.redis_prefix).await.expect("redis"),
            )
        }
        "postgres" => {
            Arc::new(kws_ipam::PostgresAllocator::new(pg().await).await.expect("postgres"))
        }
        "pgredis" => {
            let client = redis::Client::open(job.redis_url.as_str()).expect("redis url");
            let a = kws_ipam::PgRedisAllocator::new(pg().await, &client, &job.redis_prefix).await;
            Arc::new(a.expect("pgredis"))
        }
        other => panic!("unknown backend {other}"),
    }
}

/// Runs the job to completion.
pub(crate) async fn run(job: Job) {
    if job.mode == "exhaustion" {
        return crate::near_exhaustion::work(job).await;
    }
    let alloc = open(&job, 4).await;
    let pool = DnsLabel::parse(&job.pool).expect("pool");
    let net: ipnet::IpNet = job.prefix.parse().expect("prefix");
    let log = OpenOptions::new().append(true).create(true).open(&job.log).expect("log");
    let log = Arc::new(Mutex::new(log));
    let per_task = job.ops / job.tasks;
    let mut handles = Vec::new();
    for t in 0..job.tasks {
        let (alloc, pool, log) = (alloc.clone(), pool.clone(), log.clone());
        let w = job.worker;
        handles.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64((w * 1000 + t) as u64 ^ rand::random::<u64>());
            let mut held: Vec<IpAddr> = Vec::new();
            for n in 0..per_task {
                let owner = LeaseOwner::new(format!("w{w}-t{t}-{n}")).expect("owner");
                let roll = rng.random_range(0..100);
                if roll < 5 {
                    // Anywhere in the first 65,536 addresses (the whole /16).
                    let addr = nth(&net, rng.random_range(2..65_534));
                    match alloc.allocate_specific(&pool, addr, &owner).await {
                        Ok(l) => grant(&log, &l.addr, &owner, &mut held),
                        Err(Error::AlreadyAllocated { .. } | Error::Reserved { .. }) => {}
                        Err(e) => panic!("allocate_specific: {e}"),
                    }
                } else if held.is_empty() || (roll < 55 && held.len() < 16) {
                    match alloc.allocate(&pool, &owner).await {
                        Ok(l) => grant(&log, &l.addr, &owner, &mut held),
                        Err(e) => panic!("allocate: {e}"),
                    }
                } else {
                    let addr = held.swap_remove(rng.random_range(0..held.len()));
                    line(&log, &format!("R {addr}\n"));
                    alloc
                        .release(&pool, addr)
                        .await
                        .unwrap_or_else(|e| panic!("release {addr}: {e}"));
                }
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
}

fn nth(net: &ipnet::IpNet, n: u128) -> IpAddr {
    match net {
        ipnet::IpNet::V4(v) => IpAddr::V4((u32::from(v.network()) + n as u32).into()),
        ipnet::IpNet::V6(v) => IpAddr::V6((u128::from(v.network()) + n).into()),
    }
}

fn grant(log: &Mutex<std::fs::File>, addr: &IpAddr, owner: &LeaseOwner, held: &mut Vec<IpAddr>) {
    line(log, &format!("G {addr} {owner}\n"));
    held.push(*addr);
}

pub(crate) fn line(log: &Mutex<std::fs::File>, s: &str) {
    let mut f = log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    f.write_all(s.as_bytes()).expect("log write");
}
