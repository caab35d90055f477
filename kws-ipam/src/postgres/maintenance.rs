//! Reading and repairing a pool's state: the free queue, the audit, stale entries.

use std::net::IpAddr;

use kws_core::DnsLabel;

use super::{PostgresAllocator, backend, refill};
use crate::{Audit, Error, Lease, LeaseOwner};

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
    /// `allocate_specific` racing a refill, a release or an allocation can leave one
    /// (allocations consume them, a release renews them).
    /// Returns how many it removed.
    pub async fn reconcile(&self, pool: &DnsLabel) -> Result<u64, Error> {
        self.layout(pool).await?;
        let r = sqlx::query(
            "DELETE FROM kws_ipam.free_queue f USING kws_ipam.leases l \
             WHERE f.pool = $1 AND l.pool = $1 AND l.address = f.address",
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
