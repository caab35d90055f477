//! `PostgresAllocator`: pools in PostgreSQL (sqlx, migrations under `kws-ipam/migrations`).
//!
//! Every mutating operation is an item of `kws_ipam.batch`, a PL/pgSQL function that runs the
//! operations queued on one allocator instance in one call: one round trip, one transaction,
//! one durable commit for the whole batch (group commit, see `group_commit`), and each caller
//! returns only after the commit that holds its operation.
//!
//! - The lease row is the commit point: one lease per address and one per owner in a pool
//!   (unique indexes `(address, pool)` and `(owner, pool)`).
//! - Locks in one global order, so batches never deadlock each other: every change of an
//!   address's lease or free entry is made under an advisory lock of the address, every change
//!   of an owner's lease under one of the owner. A batch first runs the operations that name
//!   an address (release, `allocate_specific`, claim) in address order, after taking all their
//!   locks in key order; then its allocations, which only ever *try* a lock, so they wait for
//!   nothing; then its usage stripes, in pool order. Migration
//!   `20261202000001_kws_ipam_lock_order.sql` has the argument. Deadlocks and the waits below
//!   are counted ([`PostgresAllocator::contention`]).
//! - An allocation for an owner holding a lease is answered from it before anything is taken;
//!   the others take, oldest released first, then fresh, exactly the entries they lease.
//! - Released addresses wait in `free_queue`, fresh ones in the same table
//!   (`ready_at = '-infinity'`), so one `UNIQUE (pool, address)` keeps an address from being
//!   free twice. Entries are taken with `FOR UPDATE SKIP LOCKED`; one whose address lock is
//!   held elsewhere is passed over. When nothing could be taken but ready entries exist that
//!   other transactions hold, the batch answers `busy`: the caller pauses, holding
//!   nothing (a request queued for the entry's lock would make every other allocation pass
//!   it over), and submits again. `Exhausted` therefore means that no ready
//!   entry existed at all, locked or not, and that the cursor was at its end.
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
mod contention;
mod maintenance;
mod operations;
mod refill;

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, PoisonError, RwLock},
};

use kws_core::DnsLabel;
use sqlx::PgPool;

use crate::group_commit::{GroupCommit, Limits};
use crate::{Error, PoolSpec, pool::PoolLayout};
use batch::{Answer, Batches, Op};
pub use contention::Contention;
use contention::Counters;
use refill::Refilled;

/// Fresh addresses moved from the cursor into `free_queue` per refill: one refill
/// transaction (and its commit) serves this many fresh allocations.
const CHUNK: usize = 1024;
/// A top-up refill starts in the background when an allocation reaches the last this many
/// addresses of the chunk this process moved last, so allocations rarely wait for a refill.
const TOP_UP_AT: usize = 256;
/// Attempts of an operation (a refill raced it) or of a batch (rolled back by a deadlock or a
/// serialization failure) before it gives up.
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
    counters: Arc<Counters>,
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
    /// Pools whose cursor a refill found at its end. A cursor never moves back, so their next
    /// refills answer `Exhausted` at once: near exhaustion every allocation that finds nothing
    /// ready asks, and each waited for the pool row's lock (or lost its turn to the others in
    /// this process until it gave up).
    walked: std::sync::Mutex<std::collections::HashSet<DnsLabel>>,
}

pub(crate) fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Backend { backend: "postgres", source: Box::new(e) }
}

pub(super) fn protocol(what: String) -> Error {
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
        let counters = Arc::<Counters>::default();
        let batches = Batches { db: db.clone(), counters: counters.clone() };
        let batches = GroupCommit::new(batches, limits);
        Ok(Self {
            db,
            layouts: Arc::default(),
            batches,
            refills: Arc::default(),
            vacuums: Arc::default(),
            counters,
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
        let batches = Batches { db: self.db.clone(), counters: self.counters.clone() };
        self.batches = GroupCommit::new(batches, limits);
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

    /// The races this instance and its clones lost so far: deadlocks and serialization
    /// failures that rolled a batch back (each batch then runs again), and waits for locks
    /// held by other transactions. Between allocators the deadlocks stay 0 (batches lock in
    /// one global order, see the crate's contract of `IpAllocator`); a test or a metrics
    /// endpoint reads them here.
    pub fn contention(&self) -> Contention {
        self.counters.snapshot()
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
}

impl PostgresAllocator {
    /// Refills `layout`'s pool unless `enough` fresh addresses wait already, one refill at a
    /// time in this process: a caller that waited while another refill ran does not refill
    /// again (it answers `Waiting`, and retries its allocation).
    async fn refill(&self, layout: &PoolLayout, enough: usize) -> Result<Refilled, Error> {
        use std::sync::atomic::Ordering::SeqCst;
        let walked = |refills: &Refills| {
            refills.walked.lock().unwrap_or_else(PoisonError::into_inner).contains(layout.name())
        };
        if walked(&self.refills) {
            return Ok(Refilled::Exhausted);
        }
        let seen = self.refills.done.load(SeqCst);
        let _one = self.refills.running.lock().await;
        if self.refills.done.load(SeqCst) != seen {
            return Ok(Refilled::Waiting);
        }
        if walked(&self.refills) {
            return Ok(Refilled::Exhausted);
        }
        let refilled = refill::refill(&self.db, layout, CHUNK, enough).await?;
        if refilled == Refilled::Exhausted {
            let mut walked = self.refills.walked.lock().unwrap_or_else(PoisonError::into_inner);
            walked.insert(layout.name().clone());
        }
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
