//! `PgRedisAllocator`: the original design made correct. PostgreSQL is the truth (leases, the
//! free queue, the cursor); Redis holds a copy of the free queue as the fast path.
//!
//! - allocate: an owner that holds a lease is answered from it (one indexed read in
//!   PostgreSQL) before anything is popped. Otherwise pop a candidate from Redis, then lease it
//!   in PostgreSQL with a claim, which deletes it from the PostgreSQL free queue and inserts the
//!   lease in one transaction (a batch, under the address's and the owner's locks, in the
//!   global lock order of `PostgresAllocator`).
//!   The lease row is the commit point: a candidate that is not free there (a stale entry, a
//!   duplicate, an address taken by `allocate_specific`) is skipped. Each Redis entry names
//!   the PostgreSQL queue entry it copies, so a copy left behind by an address that was taken
//!   and released again is stale too, and reuse stays FIFO. With Redis empty, down or
//!   flushed, allocation goes through PostgreSQL alone (its queue, then the cursor), which
//!   answers `Exhausted` only when no entry is ready there at all, locked or not.
//!   A process that dies between its pop and its claim takes the popped copy with it: the
//!   address stays free in PostgreSQL, where the PostgreSQL path (once Redis runs dry) or
//!   `reconcile()` finds it, but until then newer addresses may be handed out before it.
//! - release: one PostgreSQL transaction ends the lease and queues the address, then the
//!   address is pushed to Redis. A crash between the two leaves it queued in PostgreSQL, where
//!   the PostgreSQL path and `reconcile()` find it: nothing leaks.
//! - `reconcile()` rebuilds the Redis queue from PostgreSQL after Redis lost its data.

use std::net::IpAddr;

use kws_core::DnsLabel;
use redis::{Script, aio::MultiplexedConnection};
use sqlx::PgPool;

use crate::{
    Audit, Contention, Error, IpAllocator, IpamFuture, Lease, LeaseOwner, PoolSpec, Usage,
    postgres::{Claim, PostgresAllocator},
    redis::backend as redis_backend,
};

/// Candidates popped from Redis per allocation before falling back to PostgreSQL alone.
const MAX_STALE: usize = 32;

/// A fast-path entry: an address and the id of the PostgreSQL free-queue entry it copies
/// (`None` for an entry written without one, claimed on its address alone).
type Candidate = (IpAddr, Option<i64>);

/// `address|id`, or `address` without an id.
fn entry_text((addr, id): Candidate) -> String {
    match id {
        Some(id) => format!("{addr}|{id}"),
        None => addr.to_string(),
    }
}

/// An allocator on PostgreSQL (the truth) with Redis as the fast path.
#[derive(Debug, Clone)]
pub struct PgRedisAllocator {
    pg: PostgresAllocator,
    conn: MultiplexedConnection,
    prefix: String,
    pop: Script,
    push: Script,
}

impl PgRedisAllocator {
    /// Uses `db` (applying migrations) and `client`, with Redis keys under `prefix`.
    pub async fn new(
        db: PgPool,
        client: &redis::Client,
        prefix: impl Into<String>,
    ) -> Result<Self, Error> {
        let pg = PostgresAllocator::new(db).await?;
        let conn = client.get_multiplexed_async_connection().await.map_err(redis_backend)?;
        Ok(Self {
            pg,
            conn,
            prefix: prefix.into(),
            pop: Script::new(include_str!("fast_pop.lua")),
            push: Script::new(include_str!("fast_push.lua")),
        })
    }

    /// Connects to PostgreSQL at `pg_url` (at most `max_connections`) and Redis at
    /// `redis_url`, then as [`Self::new`]. PostgreSQL connections are checked before use, as
    /// for [`PostgresAllocator::connect`].
    pub async fn connect(
        pg_url: &str,
        max_connections: u32,
        redis_url: &str,
        prefix: impl Into<String>,
    ) -> Result<Self, Error> {
        let db = crate::postgres::connect_pool(pg_url, max_connections).await?;
        let client = redis::Client::open(redis_url).map_err(redis_backend)?;
        Self::new(db, &client, prefix).await
    }

    /// The PostgreSQL side.
    pub fn postgres(&self) -> &PostgresAllocator {
        &self.pg
    }

    /// The races lost so far, as [`PostgresAllocator::contention`]: PostgreSQL is where every
    /// operation commits, so its deadlocks, rollbacks and lock waits are this allocator's.
    pub fn contention(&self) -> Contention {
        self.pg.contention()
    }

    /// The Redis key of `pool`'s fast queue: a list of `address|id|ready_ms`, `id` naming the
    /// PostgreSQL free-queue entry the Redis entry copies (`address|ready_ms` entries are
    /// claimed on their address alone).
    pub fn fast_queue_key(&self, pool: &DnsLabel) -> String {
        format!("{}ipam:fast:{pool}", self.prefix)
    }

    /// The addresses in `pool`'s fast queue, front first (stale entries included).
    pub async fn fast_queue(&self, pool: &DnsLabel) -> Result<Vec<IpAddr>, Error> {
        let raw: Vec<String> = redis::cmd("LRANGE")
            .arg(self.fast_queue_key(pool))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_backend)?;
        raw.iter()
            .map(|e| {
                let addr = e.split('|').next().unwrap_or_default();
                addr.parse().map_err(|err| Error::Backend {
                    backend: "redis",
                    source: format!("bad fast-queue entry {e:?}: {err}").into(),
                })
            })
            .collect()
    }

    /// Rebuilds `pool`'s Redis queue from the PostgreSQL free queue (same order, same
    /// quarantine ends) and removes stale PostgreSQL entries; returns the queue length.
    ///
    /// Run it after Redis lost its data, or at start-up. A release that commits while it runs
    /// may miss the fast path; it stays queued in PostgreSQL, which allocations reach when the
    /// Redis queue is empty.
    pub async fn reconcile(&self, pool: &DnsLabel) -> Result<usize, Error> {
        self.pg.reconcile(pool).await?;
        let entries = self.pg.free_entries(pool).await?;
        let key = self.fast_queue_key(pool);
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key).ignore();
        for chunk in entries.chunks(1000) {
            let items: Vec<String> =
                chunk.iter().map(|(a, id, r)| format!("{a}|{id}|{}", r.max(&0))).collect();
            pipe.rpush(&key, items).ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone()).await.map_err(redis_backend)?;
        Ok(entries.len())
    }

    /// The state of `pool` (from PostgreSQL, the truth).
    pub async fn audit(&self, pool: &DnsLabel) -> Result<Audit, Error> {
        self.pg.audit(pool).await
    }

    /// The front candidate: its address and, when the entry names one, the PostgreSQL
    /// free-queue entry it copies.
    async fn pop(&self, pool: &DnsLabel) -> Result<Option<Candidate>, Error> {
        let raw: Option<String> = self
            .pop
            .key(self.fast_queue_key(pool))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_backend)?;
        // An unparsable entry is stale by definition: the unspecified address, which no pool
        // can claim, makes the caller skip it like any other.
        Ok(raw.map(|entry| {
            let (addr, id) = match entry.split_once('|') {
                Some((a, id)) => (a, id.parse().ok()),
                None => (entry.as_str(), None),
            };
            (addr.parse().unwrap_or(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)), id)
        }))
    }

    async fn push(
        &self,
        pool: &DnsLabel,
        entry: Candidate,
        quarantine_ms: u128,
    ) -> Result<(), Error> {
        self.push
            .key(self.fast_queue_key(pool))
            .arg(entry_text(entry))
            .arg(quarantine_ms.to_string())
            .invoke_async::<i64>(&mut self.conn.clone())
            .await
            .map(|_| ())
            .map_err(redis_backend)
    }

    async fn push_front(&self, pool: &DnsLabel, entry: Candidate) -> Result<(), Error> {
        redis::cmd("LPUSH")
            .arg(self.fast_queue_key(pool))
            .arg(format!("{}|0", entry_text(entry)))
            .query_async::<i64>(&mut self.conn.clone())
            .await
            .map(|_| ())
            .map_err(redis_backend)
    }
}

impl IpAllocator for PgRedisAllocator {
    fn create_pool<'a>(&'a self, spec: PoolSpec) -> IpamFuture<'a, ()> {
        IpamFuture::boxed(async move {
            let key = self.fast_queue_key(&spec.name);
            self.pg.create_pool(spec).await?;
            // Leftovers of an earlier pool of that name would only be stale; drop them.
            let _: Result<i64, _> =
                redis::cmd("DEL").arg(key).query_async(&mut self.conn.clone()).await;
            Ok(())
        })
    }

    fn allocate<'a>(&'a self, pool: &'a DnsLabel, owner: &'a LeaseOwner) -> IpamFuture<'a, Lease> {
        IpamFuture::boxed(async move {
            // Taking nothing for an owner that holds a lease: a popped candidate would be out
            // of the queue until pushed back, and passed over meanwhile.
            if let Some(lease) = self.pg.lookup_owner(pool, owner).await? {
                return Ok(lease);
            }
            for _ in 0..MAX_STALE {
                // Redis failing is not an allocation failure: PostgreSQL alone can serve.
                let Ok(Some(candidate)) = self.pop(pool).await else { break };
                match self.pg.claim(pool, candidate, owner).await? {
                    Claim::Leased => {
                        let addr = candidate.0;
                        return Ok(Lease { pool: pool.clone(), addr, owner: owner.clone() });
                    }
                    Claim::Held(held) => {
                        // The owner got a lease concurrently, since the look above.
                        let _ = self.push_front(pool, candidate).await;
                        return Ok(Lease { pool: pool.clone(), addr: held, owner: owner.clone() });
                    }
                    Claim::Stale => continue,
                }
            }
            self.pg.allocate_in_db(pool, owner).await
        })
    }

    fn allocate_specific<'a>(
        &'a self,
        pool: &'a DnsLabel,
        addr: IpAddr,
        owner: &'a LeaseOwner,
    ) -> IpamFuture<'a, Lease> {
        IpamFuture::boxed(async move {
            // A copy of `addr` left in Redis is now stale; allocations skip it.
            self.pg.allocate_specific(pool, addr, owner).await
        })
    }

    fn release<'a>(&'a self, pool: &'a DnsLabel, addr: IpAddr) -> IpamFuture<'a, Lease> {
        IpamFuture::boxed(async move {
            let quarantine = self.pg.layout(pool).await?.quarantine().as_millis();
            let (lease, id) = self.pg.release_entry(pool, addr).await?;
            // The address is queued in PostgreSQL already; if this push is lost (or the entry was
            // there before, `id` None), the PostgreSQL path and reconcile() still find it.
            if let Some(id) = id {
                let _ = self.push(pool, (addr, Some(id)), quarantine).await;
            }
            Ok(lease)
        })
    }

    fn lookup<'a>(&'a self, pool: &'a DnsLabel, addr: IpAddr) -> IpamFuture<'a, Option<Lease>> {
        IpamFuture::boxed(async move { self.pg.lookup(pool, addr).await })
    }

    fn lookup_owner<'a>(
        &'a self,
        pool: &'a DnsLabel,
        owner: &'a LeaseOwner,
    ) -> IpamFuture<'a, Option<Lease>> {
        IpamFuture::boxed(async move { self.pg.lookup_owner(pool, owner).await })
    }

    fn usage<'a>(&'a self, pool: &'a DnsLabel) -> IpamFuture<'a, Usage> {
        IpamFuture::boxed(async move { self.pg.usage(pool).await })
    }
}
