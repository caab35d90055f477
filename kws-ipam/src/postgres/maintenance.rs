//! Reading and repairing a pool's state: the free queue, the audit, stale entries.

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use kws_core::DnsLabel;
use sqlx::PgPool;

use super::{PostgresAllocator, backend, refill};
use crate::{Audit, Error, Lease, LeaseOwner};

/// Operations of one process between two vacuums of `free_queue`.
const VACUUM_EVERY: u64 = 1024;

/// The vacuums of `free_queue` one process runs: one per `VACUUM_EVERY` operations, one at a
/// time.
#[derive(Debug, Default)]
pub(super) struct Vacuums {
    operations: AtomicU64,
    running: AtomicBool,
}

/// Vacuums `free_queue` so that its dead entries stop costing the takes.
///
/// Allocations take the lowest fresh address of a pool, or its oldest released one, so each
/// take walks its index from the left across every entry the takes before it deleted, until a
/// vacuum removes them. After 16,384 allocations with no vacuum a take read 66 pages instead of
/// 7 (tests/postgres.rs), and autovacuum visits a database once a minute at best: 400,000
/// allocations at full speed. One vacuum per 1,024 operations keeps each take to a few pages
/// whatever the rate. `SKIP_LOCKED` does not wait for another process's vacuum of the table,
/// and without truncation it takes no lock that blocks the operations. A role that does not
/// own the table only gets a warning, and the takes rely on autovacuum.
async fn vacuum_free_queue(db: &PgPool) -> Result<(), Error> {
    sqlx::raw_sql("VACUUM (SKIP_LOCKED, INDEX_CLEANUP ON, TRUNCATE false) kws_ipam.free_queue")
        .execute(db)
        .await
        .map_err(backend)?;
    Ok(())
}

impl PostgresAllocator {
    /// Counts an operation, and every `VACUUM_EVERY` of them starts a vacuum of `free_queue`
    /// in the background unless this process runs one already. Best effort: a failed vacuum
    /// leaves the dead entries to the next one, or to autovacuum.
    pub(super) fn vacuum_if_due(&self) {
        let n = self.vacuums.operations.fetch_add(1, Ordering::Relaxed) + 1;
        if n % VACUUM_EVERY != 0 || self.vacuums.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let (db, running) = (self.db.clone(), Running(Arc::clone(&self.vacuums)));
        tokio::spawn(async move {
            let _ = vacuum_free_queue(&db).await;
            drop(running);
        });
    }
}

/// Clears `Vacuums::running` when dropped: when the vacuum ends, and also when its task is
/// dropped unfinished (its runtime shutting down), so later vacuums are not held off.
struct Running(Arc<Vacuums>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
    }
}

impl PostgresAllocator {
    /// Every released address of `pool` waiting in `free_queue`, oldest first (with those in
    /// quarantine), and when each is ready, in milliseconds since the Unix epoch. Fresh entries
    /// (moved in from the cursor, not yet handed out) are not listed.
    pub async fn free_queue(&self, pool: &DnsLabel) -> Result<Vec<(IpAddr, i64)>, Error> {
        sqlx::query_as(
            "SELECT address, (extract(epoch FROM ready_at) * 1000)::bigint \
             FROM kws_ipam.free_queue WHERE pool = $1 AND ready_at > '-infinity' \
             ORDER BY ready_at, id",
        )
        .bind(pool.as_str())
        .fetch_all(&self.db)
        .await
        .map_err(backend)
    }

    /// As [`Self::free_queue`], with each entry's id: (address, id, ready in ms).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // the PostgreSQL+Redis audit's
    pub(crate) async fn free_entries(
        &self,
        pool: &DnsLabel,
    ) -> Result<Vec<(IpAddr, i64, i64)>, Error> {
        sqlx::query_as(
            "SELECT address, id, (extract(epoch FROM ready_at) * 1000)::bigint \
             FROM kws_ipam.free_queue WHERE pool = $1 AND ready_at > '-infinity' \
             ORDER BY ready_at, id",
        )
        .bind(pool.as_str())
        .fetch_all(&self.db)
        .await
        .map_err(backend)
    }

    /// Removes free entries (queued or fresh) of `pool` whose address is leased: an
    /// `allocate_specific` racing a refill can leave one (allocations consume them, a release
    /// renews them). Entries another transaction holds are left for the next run: this waits
    /// for no lock, so it never closes a cycle with a batch.
    /// Returns how many it removed.
    pub async fn reconcile(&self, pool: &DnsLabel) -> Result<u64, Error> {
        self.layout(pool).await?;
        let r = sqlx::query(
            "DELETE FROM kws_ipam.free_queue WHERE ctid = ANY (ARRAY( \
             SELECT f.ctid FROM kws_ipam.free_queue f JOIN kws_ipam.leases l \
             ON l.pool = f.pool AND l.address = f.address \
             WHERE f.pool = $1 FOR UPDATE OF f SKIP LOCKED))",
        )
        .bind(pool.as_str())
        .execute(&self.db)
        .await;
        Ok(r.map_err(backend)?.rows_affected())
    }

    /// The state of `pool` for checks: leases, free addresses (queue and fresh), and the number
    /// of addresses never handed out.
    pub async fn audit(&self, pool: &DnsLabel) -> Result<Audit, Error> {
        let layout = self.layout(pool).await?;
        let mut tx = self.db.begin().await.map_err(backend)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let leases: Vec<(IpAddr, String)> =
            sqlx::query_as("SELECT address, owner FROM kws_ipam.leases WHERE pool = $1")
                .bind(pool.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
        let mut free: Vec<IpAddr> =
            sqlx::query_scalar("SELECT address FROM kws_ipam.free_queue WHERE pool = $1")
                .bind(pool.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
        let cursor = refill::read_cursor(&mut tx, &layout, false).await?;
        tx.commit().await.map_err(backend)?;
        free.sort();
        let leases = leases
            .into_iter()
            .map(|(addr, o)| Lease { pool: pool.clone(), addr, owner: LeaseOwner::trusted(o) })
            .collect();
        Ok(Audit::new(&layout, cursor, leases, free))
    }
}
