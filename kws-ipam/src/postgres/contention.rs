//! Lost races, counted: deadlocks and serialization failures that rolled a batch back, and the
//! waits of operations for locks other transactions held. Also the waits themselves, which run
//! outside any batch.
//!
//! A wait for a free entry held elsewhere (`busy`) sleeps and asks again; it takes no lock.
//! Before, it queued for the entry's address lock and then its row: a queued or granted
//! request makes every allocation's `pg_try_advisory_xact_lock` (which yields to queued
//! requests too) and `SKIP LOCKED` pass the entry over, so near exhaustion the waiters for
//! the oldest entry kept it from being taken for seconds while newer ones were handed out
//! (CI saw 109 FIFO inversions behind one address in a 70 s stress run).

use std::{
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Duration,
};

use kws_core::DnsLabel;
use sqlx::PgPool;

use super::{ATTEMPTS, backend};
use crate::Error;

/// Waits one operation may make for locks held elsewhere before it gives up. Near exhaustion
/// an allocation may wait a few times in a row; a thousand (over 30 s of pauses) means
/// something is wrong.
const WAITS: usize = 1000;

/// The first pause of a wait for a held free entry; each next one doubles, up to
/// [`LONGEST_PAUSE`]. The holder is a batch (a few milliseconds) or a transaction outside
/// the allocator.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
/// The longest pause between two asks for a held free entry.
const LONGEST_PAUSE: Duration = Duration::from_millis(32);

/// The races a [`PostgresAllocator`](crate::PostgresAllocator) (with its clones) lost since it
/// was made, from [`PostgresAllocator::contention`](crate::PostgresAllocator::contention): for
/// tests and metrics. Every count only grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Contention {
    /// Batches PostgreSQL rolled back to break a deadlock (SQLSTATE `40P01`). Batches of the
    /// allocator take their locks in one global order, so this stays 0 unless a transaction
    /// outside the allocator (an operator's, a test's) closes a cycle with one.
    pub deadlocks: u64,
    /// Batches rolled back by a serialization failure (`40001`): a lease changed under the
    /// locks that guard it, which only a writer outside the allocator can do.
    pub serialization_failures: u64,
    /// Batches run again after a deadlock or a serialization failure.
    pub batch_retries: u64,
    /// Operations that found what they needed held by another transaction (every ready free
    /// entry of the pool, or the lock of their owner), waited for it outside any batch, and
    /// were submitted again: the alternative to answering `Exhausted` for an entry that is
    /// only locked.
    pub lock_waits: u64,
}

/// The counts behind [`Contention`], shared by an allocator, its clones and its batches.
#[derive(Debug, Default)]
pub(super) struct Counters {
    deadlocks: AtomicU64,
    serialization_failures: AtomicU64,
    batch_retries: AtomicU64,
    lock_waits: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> Contention {
        Contention {
            deadlocks: self.deadlocks.load(Relaxed),
            serialization_failures: self.serialization_failures.load(Relaxed),
            batch_retries: self.batch_retries.load(Relaxed),
            lock_waits: self.lock_waits.load(Relaxed),
        }
    }

    /// Counts `e` when a batch may run again after it (a deadlock or a serialization failure);
    /// answers whether it may.
    pub(super) fn count_rollback(&self, e: &sqlx::Error) -> bool {
        let code = e.as_database_error().and_then(|d| d.code());
        let counter = match code.as_deref() {
            Some("40P01") => &self.deadlocks,
            Some("40001") => &self.serialization_failures,
            _ => return false,
        };
        counter.fetch_add(1, Relaxed);
        true
    }

    /// Counts a batch run again.
    pub(super) fn count_batch_retry(&self) {
        self.batch_retries.fetch_add(1, Relaxed);
    }
}

/// What one operation may still spend on lost races: attempts (a refill raced, a batch
/// answered `retry`) and waits for locks held elsewhere.
#[derive(Debug)]
pub(super) struct Budget<'a> {
    pool: &'a DnsLabel,
    attempts: usize,
    waits: usize,
    /// The next pause of a wait for a held free entry.
    pause: Duration,
}

impl<'a> Budget<'a> {
    pub(super) fn new(pool: &'a DnsLabel) -> Self {
        Self { pool, attempts: 0, waits: 0, pause: FIRST_PAUSE }
    }

    /// One more attempt; an error once `ATTEMPTS` are spent.
    pub(super) fn attempt(&mut self) -> Result<(), Error> {
        self.attempts += 1;
        if self.attempts > ATTEMPTS {
            return Err(gave_up(self.pool, format!("{ATTEMPTS} attempts lost to races")));
        }
        Ok(())
    }

    /// Waits for `on`, held by another transaction, then answers; an error once `WAITS` are
    /// spent. Counted in `counters`. An owner's lock is queued for (only allocations of that
    /// owner yield to the queue); a held free entry is asked for again after a pause that
    /// doubles from `FIRST_PAUSE` to `LONGEST_PAUSE`, holding nothing meanwhile (see the
    /// module's documentation).
    pub(super) async fn wait(
        &mut self,
        db: &PgPool,
        counters: &Counters,
        on: Held<'_>,
    ) -> Result<(), Error> {
        self.waits += 1;
        if self.waits > WAITS {
            return Err(gave_up(self.pool, format!("{WAITS} waits for locks held elsewhere")));
        }
        counters.lock_waits.fetch_add(1, Relaxed);
        match on {
            Held::Entry => {
                tokio::time::sleep(self.pause).await;
                self.pause = (self.pause * 2).min(LONGEST_PAUSE);
                Ok(())
            }
            // One statement outside any transaction: it holds nothing else while it waits.
            Held::Owner(owner) => sqlx::query("SELECT kws_ipam.wait_for_owner($1, $2)")
                .bind(self.pool.as_str())
                .bind(owner)
                .execute(db)
                .await
                .map(|_| ())
                .map_err(backend),
        }
    }
}

/// What a batch answered was held by another transaction.
#[derive(Debug, Clone, Copy)]
pub(super) enum Held<'a> {
    /// Every ready free entry of the pool that the batch could take (`busy`).
    Entry,
    /// The lock of an owner (`wait`).
    Owner(&'a str),
}

impl<'a> Held<'a> {
    /// The lock a batch answered for an operation: `busy` with an address, `wait` with an
    /// owner; `None` for any other answer.
    pub(super) fn from_answer(
        kind: &str,
        addr: Option<std::net::IpAddr>,
        text: Option<&'a str>,
    ) -> Option<Self> {
        match (kind, addr, text) {
            ("busy", Some(_), _) => Some(Self::Entry),
            ("wait", _, Some(owner)) => Some(Self::Owner(owner)),
            _ => None,
        }
    }
}

fn gave_up(pool: &DnsLabel, why: String) -> Error {
    Error::Backend {
        backend: "postgres",
        source: format!("pool {pool}: gave up after {why}").into(),
    }
}
