//! `PostgresAllocator`: pools in PostgreSQL (sqlx, migrations under `kws-ipam/migrations`).
//!
//! Every mutating operation is an item of `kws_ipam.batch`, a PL/pgSQL function that runs the
//! operations queued on one allocator instance in one call: one round trip, one transaction,
//! one durable commit for the whole batch (group commit, see `group_commit`), and each caller
//! returns only after the commit that holds its operation.
//!
//! - The lease row is the commit point: one lease per address and one per owner in a pool
//!   (unique indexes `(address, pool)` and `(owner, pool)`).
//! - Released addresses are taken from `free_queue` with `FOR UPDATE SKIP LOCKED`, oldest
//!   first; then fresh ones, which wait in the same table (`ready_at = '-infinity'`), so one
//!   `UNIQUE (pool, address)` keeps an address from being free twice.
//! - A short transaction of its own moves fresh addresses in from the persisted cursor, 1,024
//!   at a time (the only moment the pool row is locked), started in the background before the
//!   chunk runs out.
//! - A run of allocations in one batch takes its addresses with one statement each for the
//!   released and the fresh ones; the function runs with sequential scans off, so those
//!   deletes stay TID scans whatever the statistics.
//! - Every probe of `leases` compares the pool with `IS NOT DISTINCT FROM`, which no index
//!   serves, so an address probe reads only `leases_address` and an owner probe only
//!   `leases_owner`, even under a generic plan made while the table was empty. The refill's
//!   statements are not prepared: they are planned at each refill.
//! - Lease counts live in 32 stripes per pool, each batch adding its net change to one it can
//!   lock without waiting.
//! - Each process vacuums `free_queue` every 1,024 operations, in the background: a take walks
//!   its index from the left across the entries earlier takes deleted, so without it a take's
//!   cost grows with the allocations since autovacuum last came (once a minute at best).
//!   The refill runs with JIT off: compiling its insert cost a third of the statement.

mod batch;
mod maintenance;
mod refill;

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, PoisonError, RwLock},
};

use kws_core::DnsLabel;
use sqlx::PgPool;

use crate::group_commit::{GroupCommit, Limits};
use crate::{Error, IpAllocator, IpamFuture, Lease, LeaseOwner, PoolSpec, Usage, pool::PoolLayout};
use batch::{Answer, Batches, Op};
use refill::Refilled;

/// Fresh addresses moved from the cursor into `free_queue` per refill: one refill
/// transaction (and its commit) serves this many fresh allocations.
const CHUNK: usize = 1024;
/// A top-up refill starts in the background when an allocation reaches the last this many
/// addresses of the chunk this process moved last, so allocations rarely wait for a refill.
const TOP_UP_AT: usize = 256;
/// Attempts of an operation (or a batch) that lost a race it can retry.
const ATTEMPTS: usize = 50;
/// Operations per batch, by default.
const BATCH_ITEMS: usize = 64;
/// Batches in flight at once, by default (each holds one connection while it runs).
const BATCHES_IN_FLIGHT: usize = 2;

/// An allocator whose pools live in PostgreSQL; any number of processes may share it.
///
/// Concurrent calls on one instance (and its clones) are coalesced: while
/// [`Self::with_group_commit`]'s `max_in_flight` batches run, new operations queue, and the
/// next batch runs up to `max_items` of them in one transaction. A lone call runs at once.
#[derive(Debug, Clone)]
pub struct PostgresAllocator {
    db: PgPool,
    layouts: Arc<RwLock<HashMap<DnsLabel, Arc<PoolLayout>>>>,
    batches: GroupCommit<Batches>,
    refills: Arc<Refills>,
    vacuums: Arc<maintenance::Vacuums>,
}

/// One refill at a time in this process: operations that found the queues empty together wait
/// for one refill instead of each locking the pool row in a transaction of its own.
#[derive(Debug, Default)]
struct Refills {
    running: tokio::sync::Mutex<()>,
    done: std::sync::atomic::AtomicU64,
    /// Per pool, the host number from which an allocation starts a top-up (set by this
    /// process's last refill of the pool, taken by the top-up it starts).
    top_up_from: std::sync::Mutex<HashMap<DnsLabel, u128>>,
}

pub(crate) fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Backend { backend: "postgres", source: Box::new(e) }
}

fn protocol(what: String) -> Error {
    Error::Backend { backend: "postgres", source: what.into() }
}

/// A pool of at most `max_connections` connections to `url`. sqlx checks each connection (one
/// round trip) before a batch uses it, so connections that died while idle (a PostgreSQL
/// restart) are replaced before a batch is lost to them. Checking only connections idle for a
/// second or more saved 3 µs of client CPU per operation and no measurable throughput
/// (docs/PERFORMANCE.md), so the check stays.
pub(crate) async fn connect_pool(url: &str, max_connections: u32) -> Result<PgPool, Error> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(max_connections)
        .connect(url)
        .await
        .map_err(backend)
}

fn is_retryable(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "40001" || c == "40P01")
}

/// What `claim` answered about a fast-path candidate.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The candidate is now leased to the owner.
    Leased,
    /// The owner already held this address; the candidate is untouched.
    Held(IpAddr),
    /// The candidate was not ready in the free queue (taken, leased, or in quarantine).
    Stale,
}

impl PostgresAllocator {
    /// Uses `db`, applying the crate's migrations first (idempotent; safe from many processes
    /// at once). Batches: at most 64 operations each, and at most 2 in flight (1 when `db`
    /// has a single connection).
    pub async fn new(db: PgPool) -> Result<Self, Error> {
        let mut migrator = sqlx::migrate!("./migrations");
        // Other crates may keep their own migrations in the same database.
        migrator.set_ignore_missing(true);
        migrator.run(&db).await.map_err(backend)?;
        let conns = usize::try_from(db.options().get_max_connections()).unwrap_or(1);
        let limits = Limits::new(BATCH_ITEMS, BATCHES_IN_FLIGHT.min(conns));
        let batches = GroupCommit::new(Batches { db: db.clone() }, limits);
        Ok(Self {
            db,
            layouts: Arc::default(),
            batches,
            refills: Arc::default(),
            vacuums: Arc::default(),
        })
    }

    /// Connects to `url` with at most `max_connections` connections, then as [`Self::new`].
    /// Each connection is checked before a batch uses it, so one that died while idle (a
    /// PostgreSQL restart) is replaced instead of failing a batch.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, Error> {
        let db = connect_pool(url, max_connections).await?;
        Self::new(db).await
    }

    /// The same allocator with other group-commit bounds: at most `max_items` operations per
    /// transaction and `max_in_flight` transactions at once (each at least 1). `(1, n)` turns
    /// coalescing off for up to `n` concurrent calls. Clones made before keep the old bounds.
    pub fn with_group_commit(mut self, max_items: usize, max_in_flight: usize) -> Self {
        let limits = Limits::new(max_items, max_in_flight);
        self.batches = GroupCommit::new(Batches { db: self.db.clone() }, limits);
        self
    }

    /// The group-commit bounds: operations per transaction, transactions in flight.
    pub fn group_commit(&self) -> (usize, usize) {
        let l = self.batches.limits();
        (l.max_items, l.max_in_flight)
    }

    /// Group commit so far on this instance and its clones: transactions run, and the
    /// operations they held.
    pub fn group_commit_counts(&self) -> (u64, u64) {
        self.batches.counts()
    }

    /// The connection pool.
    pub fn db(&self) -> &PgPool {
        &self.db
    }

    /// The layout of `pool`, from the cache or the `pools` table (pools never change).
    pub(crate) async fn layout(&self, pool: &DnsLabel) -> Result<Arc<PoolLayout>, Error> {
        if let Some(l) = self.layouts.read().unwrap_or_else(PoisonError::into_inner).get(pool) {
            return Ok(l.clone());
        }
        let row: Option<(sqlx::types::Json<PoolSpec>,)> =
            sqlx::query_as("SELECT spec FROM kws_ipam.pools WHERE name = $1")
                .bind(pool.as_str())
                .fetch_optional(&self.db)
                .await
                .map_err(backend)?;
        let Some((spec,)) = row else { return Err(Error::PoolNotFound(pool.clone())) };
        let layout = Arc::new(PoolLayout::new(&spec.0)?);
        let mut cache = self.layouts.write().unwrap_or_else(PoisonError::into_inner);
        cache.insert(pool.clone(), layout.clone());
        Ok(layout)
    }

    /// Runs `op` in the next batch; returns once the batch has committed.
    async fn run(&self, op: Op) -> Result<Answer, Error> {
        let lost = || Err(protocol("the batch of an operation was lost".into()));
        let answer = self.batches.submit(op).await.unwrap_or_else(lost);
        self.vacuum_if_due();
        answer
    }

    /// Leases `addr`, a candidate from a fast path, to `owner`: only from the free-queue entry
    /// `id` when given (a copy of an older entry is stale).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) async fn claim(
        &self,
        pool: &DnsLabel,
        (addr, id): (IpAddr, Option<i64>),
        owner: &LeaseOwner,
    ) -> Result<Claim, Error> {
        for _ in 0..ATTEMPTS {
            let op = Op::Claim { pool: pool.clone(), addr, id, owner: owner.clone() };
            let a = self.run(op).await?;
            match (a.kind.as_str(), a.addr) {
                ("new", _) => return Ok(Claim::Leased),
                ("held", Some(held)) => return Ok(Claim::Held(held)),
                ("stale", _) => return Ok(Claim::Stale),
                ("retry", _) => continue,
                _ => return Err(protocol(format!("claim answered {a:?}"))),
            }
        }
        Err(retries_exhausted(pool))
    }

    /// Allocates through the PostgreSQL queues, refilling from the cursor when they are empty.
    pub(crate) async fn allocate_in_db(
        &self,
        pool: &DnsLabel,
        owner: &LeaseOwner,
    ) -> Result<Lease, Error> {
        let layout = self.layout(pool).await?;
        for _ in 0..ATTEMPTS {
            let a = self.run(Op::Allocate { pool: pool.clone(), owner: owner.clone() }).await?;
            match (a.kind.as_str(), a.addr) {
                ("held" | "new", Some(addr)) => {
                    if a.kind == "new" {
                        self.top_up_if_low(&layout, addr);
                    }
                    return Ok(Lease { pool: pool.clone(), addr, owner: owner.clone() });
                }
                ("empty", _) => {
                    if self.refill(&layout, 1).await? == Refilled::Exhausted {
                        return Err(Error::Exhausted { pool: pool.clone() });
                    }
                }
                ("nopool", _) => return Err(Error::PoolNotFound(pool.clone())),
                ("retry", _) => {}
                _ => return Err(protocol(format!("allocate answered {a:?}"))),
            }
        }
        Err(retries_exhausted(pool))
    }
}

impl PostgresAllocator {
    /// Refills `layout`'s pool unless `enough` fresh addresses wait already, one refill at a
    /// time in this process: a caller that waited while another refill ran does not refill
    /// again (it answers `Waiting`, and retries its allocation).
    async fn refill(&self, layout: &PoolLayout, enough: usize) -> Result<Refilled, Error> {
        use std::sync::atomic::Ordering::SeqCst;
        let seen = self.refills.done.load(SeqCst);
        let _one = self.refills.running.lock().await;
        if self.refills.done.load(SeqCst) != seen {
            return Ok(Refilled::Waiting);
        }
        let refilled = refill::refill(&self.db, layout, CHUNK, enough).await?;
        self.refills.done.fetch_add(1, SeqCst);
        if let Refilled::Chunk { last } = refilled {
            let from = last.saturating_sub(TOP_UP_AT as u128);
            let mut marks = self.refills.top_up_from.lock().unwrap_or_else(PoisonError::into_inner);
            marks.insert(layout.name().clone(), from);
        }
        Ok(refilled)
    }

    /// Starts a top-up refill in the background when `addr`, just allocated, lies in the last
    /// `TOP_UP_AT` addresses of the chunk this process moved last (once per chunk). The task
    /// holds a clone of this allocator; an error only leaves the next refill to a caller.
    fn top_up_if_low(&self, layout: &Arc<PoolLayout>, addr: IpAddr) {
        let Some(host) = layout.host_of(addr) else { return };
        {
            let mut marks = self.refills.top_up_from.lock().unwrap_or_else(PoisonError::into_inner);
            match marks.get(layout.name()) {
                Some(&from) if host >= from => marks.remove(layout.name()),
                _ => return,
            };
        }
        let (this, layout) = (self.clone(), Arc::clone(layout));
        tokio::spawn(async move {
            // Best effort: a failed top-up leaves the refill to the allocation that finds the
            // queues empty, which reports the error.
            let _ = this.refill(&layout, TOP_UP_AT + 1).await;
        });
    }
}

fn retries_exhausted(pool: &DnsLabel) -> Error {
    Error::Backend {
        backend: "postgres",
        source: format!("pool {pool}: gave up after {ATTEMPTS} attempts lost to races").into(),
    }
}

impl IpAllocator for PostgresAllocator {
    fn create_pool<'a>(&'a self, spec: PoolSpec) -> IpamFuture<'a, ()> {
        IpamFuture::boxed(async move { refill::create_pool(&self.db, spec).await })
    }

    fn allocate<'a>(&'a self, pool: &'a DnsLabel, owner: &'a LeaseOwner) -> IpamFuture<'a, Lease> {
        IpamFuture::boxed(async move { self.allocate_in_db(pool, owner).await })
    }

    fn allocate_specific<'a>(
        &'a self,
        pool: &'a DnsLabel,
        addr: IpAddr,
        owner: &'a LeaseOwner,
    ) -> IpamFuture<'a, Lease> {
        IpamFuture::boxed(async move {
            self.layout(pool).await?.usable_host(addr)?;
            for _ in 0..ATTEMPTS {
                let op = Op::Specific { pool: pool.clone(), addr, owner: owner.clone() };
                let a = self.run(op).await?;
                let ok = || Lease { pool: pool.clone(), addr, owner: owner.clone() };
                match (a.kind.as_str(), a.addr, a.text) {
                    ("new", _, _) => return Ok(ok()),
                    // The owner holds exactly this address: allocate_specific is idempotent too.
                    ("taken", _, Some(holder)) if holder == owner.as_str() => return Ok(ok()),
                    ("taken", _, Some(holder)) => {
                        let holder = LeaseOwner::trusted(holder);
                        return Err(Error::AlreadyAllocated { pool: pool.clone(), addr, holder });
                    }
                    ("owner", Some(held), _) => {
                        let owner = owner.clone();
                        return Err(Error::OwnerHasLease { pool: pool.clone(), owner, addr: held });
                    }
                    ("retry", _, _) => {}
                    (kind, held, text) => {
                        return Err(protocol(format!(
                            "allocate_specific answered {kind} {held:?} {text:?}"
                        )));
                    }
                }
            }
            Err(retries_exhausted(pool))
        })
    }

    fn release<'a>(&'a self, pool: &'a DnsLabel, addr: IpAddr) -> IpamFuture<'a, Lease> {
        IpamFuture::boxed(async move { Ok(self.release_entry(pool, addr).await?.0) })
    }

    fn lookup<'a>(&'a self, pool: &'a DnsLabel, addr: IpAddr) -> IpamFuture<'a, Option<Lease>> {
        IpamFuture::boxed(async move {
            if self.layout(pool).await?.leasable_host(addr)?.is_none() {
                return Ok(None);
            }
            // The pool is a filter that no index serves, so only leases_address can answer
            // (see migration 20261126000005_kws_ipam_lease_probes.sql).
            let owner: Option<String> = sqlx::query_scalar(
                "SELECT owner FROM kws_ipam.leases \
                 WHERE pool IS NOT DISTINCT FROM $1 AND address = $2",
            )
            .bind(pool.as_str())
            .bind(addr)
            .fetch_optional(&self.db)
            .await
            .map_err(backend)?;
            Ok(owner.map(|o| Lease { pool: pool.clone(), addr, owner: LeaseOwner::trusted(o) }))
        })
    }

    fn lookup_owner<'a>(
        &'a self,
        pool: &'a DnsLabel,
        owner: &'a LeaseOwner,
    ) -> IpamFuture<'a, Option<Lease>> {
        IpamFuture::boxed(async move {
            self.layout(pool).await?;
            // Only leases_owner can answer, as in `lookup`.
            let addr: Option<IpAddr> = sqlx::query_scalar(
                "SELECT address FROM kws_ipam.leases \
                 WHERE pool IS NOT DISTINCT FROM $1 AND owner = $2",
            )
            .bind(pool.as_str())
            .bind(owner.as_str())
            .fetch_optional(&self.db)
            .await
            .map_err(backend)?;
            Ok(addr.map(|addr| Lease { pool: pool.clone(), addr, owner: owner.clone() }))
        })
    }

    fn usage<'a>(&'a self, pool: &'a DnsLabel) -> IpamFuture<'a, Usage> {
        IpamFuture::boxed(async move {
            let capacity = self.layout(pool).await?.capacity();
            // The sum of the pool's 32 counter stripes, whatever its size.
            let allocated: Option<i64> = sqlx::query_scalar(
                "SELECT sum(allocated)::bigint FROM kws_ipam.usage_stripes WHERE pool = $1",
            )
            .bind(pool.as_str())
            .fetch_one(&self.db)
            .await
            .map_err(backend)?;
            let Some(allocated) = allocated else { return Err(Error::PoolNotFound(pool.clone())) };
            let allocated = u128::try_from(allocated).unwrap_or(0);
            Ok(Usage { capacity, allocated, free: capacity.saturating_sub(allocated) })
        })
    }
}

impl PostgresAllocator {
    /// Releases `addr` (after checking it against the layout); returns the ended lease and the
    /// id of the free-queue entry it made (`None` when the address was queued already).
    pub(crate) async fn release_entry(
        &self,
        pool: &DnsLabel,
        addr: IpAddr,
    ) -> Result<(Lease, Option<i64>), Error> {
        if self.layout(pool).await?.leasable_host(addr)?.is_none() {
            return Err(Error::NotAllocated { pool: pool.clone(), addr });
        }
        let answer = self.run(Op::Release { pool: pool.clone(), addr }).await?;
        match (answer.kind.as_str(), answer.text) {
            ("released", Some(o)) => {
                let lease = Lease { pool: pool.clone(), addr, owner: LeaseOwner::trusted(o) };
                Ok((lease, answer.id))
            }
            ("notallocated", _) => Err(Error::NotAllocated { pool: pool.clone(), addr }),
            (kind, text) => Err(protocol(format!("release answered {kind} {text:?}"))),
        }
    }
}
