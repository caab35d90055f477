//! Pool creation and the persisted cursor: moving the next chunk of fresh addresses into
//! `free_queue` (as fresh entries, `ready_at = '-infinity'`), under the pool row's lock, in a
//! transaction of its own.

use std::net::IpAddr;

use sqlx::{PgPool, Postgres, Transaction};

use super::backend;
use crate::{Error, PoolSpec, pool::Cursor, pool::PoolLayout};

/// Creates the pool row; `PoolExists` for a taken name, `InvalidPool` for an overlap.
pub(super) async fn create_pool(db: &PgPool, spec: PoolSpec) -> Result<(), Error> {
    let layout = PoolLayout::new(&spec)?;
    let start = layout.start();
    let json = serde_json::to_value(&spec).map_err(backend)?;
    let done = sqlx::query(
        "INSERT INTO kws_ipam.pools (name, prefix, spec, quarantine, cursor_segment, cursor_next) \
         VALUES ($1, $2::cidr, $3, make_interval(secs => $4), 0, $5) ON CONFLICT (name) DO NOTHING",
    )
    .bind(spec.name.as_str())
    .bind(spec.prefix.to_string())
    .bind(json)
    .bind(spec.quarantine.as_secs_f64())
    .bind(layout.addr_of(start.next))
    .execute(db)
    .await;
    match done {
        Ok(r) if r.rows_affected() == 0 => Err(Error::PoolExists(spec.name)),
        Ok(_) => Ok(()),
        Err(e) if e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "23P01") => {
            Err(Error::InvalidPool(format!(
                "pool {} ({}) overlaps an existing pool: {e}",
                spec.name, spec.prefix
            )))
        }
        Err(e) => Err(backend(e)),
    }
}

/// The pool's cursor, locking the pool row when `lock`.
pub(super) async fn read_cursor(
    tx: &mut Transaction<'_, Postgres>,
    layout: &PoolLayout,
    lock: bool,
) -> Result<Cursor, Error> {
    let sql = if lock {
        "SELECT cursor_segment, cursor_next FROM kws_ipam.pools WHERE name = $1 FOR NO KEY UPDATE"
    } else {
        "SELECT cursor_segment, cursor_next FROM kws_ipam.pools WHERE name = $1"
    };
    let (segment, next): (i32, Option<IpAddr>) = sqlx::query_as(sql)
        .bind(layout.name().as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?
        .ok_or_else(|| Error::PoolNotFound(layout.name().clone()))?;
    let segment = usize::try_from(segment).unwrap_or(usize::MAX).min(layout.segments().len());
    let next = next.and_then(|a| layout.host_of(a));
    Ok(match next {
        Some(next) if segment < layout.segments().len() => Cursor { segment, next },
        _ => Cursor { segment: layout.segments().len(), next: 0 },
    })
}

/// What a refill did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refilled {
    /// Moved the next chunk into `free_queue`; the last host number the cursor passed.
    Chunk { last: u128 },
    /// Enough fresh addresses were waiting already (another process refilled).
    Waiting,
    /// The cursor is at the end: nothing is left to allocate fresh.
    Exhausted,
}

/// Moves up to `chunk` fresh addresses from the cursor into `free_queue`, skipping those that
/// `allocate_specific` took (leased, or released into the queue), unless `enough` fresh
/// addresses are waiting already (1 when the queues ran dry; more for a top-up ahead of that).
pub(super) async fn refill(
    db: &PgPool,
    layout: &PoolLayout,
    chunk: usize,
    enough: usize,
) -> Result<Refilled, Error> {
    let mut tx = db.begin().await.map_err(backend)?;
    // The chunk's insert is priced past `jit_above_cost` once the tables hold some thousands of
    // rows, and compiling it took 5 ms a refill (pg_stat_statements), a third of the statement.
    // Nothing here runs long enough to win that back.
    sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await.map_err(backend)?;
    let mut cursor = read_cursor(&mut tx, layout, true).await?;
    let pool = layout.name().as_str();
    // Another process may have refilled while this one waited for the lock. Planned at each
    // refill, like the insert below, so it reads free_queue_fresh whatever the queue was when a
    // generic plan would have been made.
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM kws_ipam.free_queue \
         WHERE pool = $1 AND ready_at = '-infinity' LIMIT $2) AS w",
    )
    .persistent(false)
    .bind(pool)
    .bind(i64::try_from(enough).unwrap_or(i64::MAX))
    .fetch_one(&mut *tx)
    .await
    .map_err(backend)?;
    if usize::try_from(waiting).unwrap_or(usize::MAX) >= enough {
        tx.commit().await.map_err(backend)?;
        return Ok(Refilled::Waiting);
    }
    let hosts: Vec<u128> = std::iter::from_fn(|| layout.advance(&mut cursor)).take(chunk).collect();
    let Some(&last) = hosts.last() else {
        // Released addresses may still be in quarantine; "exhausted" means nothing is ready.
        tx.commit().await.map_err(backend)?;
        return Ok(Refilled::Exhausted);
    };
    let addrs: Vec<IpAddr> = hosts.iter().map(|&h| layout.addr_of(h)).collect();
    // One probe of `leases_address` per address: the pool is a filter that no index serves, as
    // in the batch function (migration 20261126000005_kws_ipam_lease_probes.sql). OFFSET 0 keeps
    // the NOT EXISTS a subplan (an anti join may read every lease). The statement is not
    // prepared (`persistent(false)`): it is planned at each refill against the table as it is.
    // Prepared, it kept a generic plan made while the table was empty, which read every lease
    // for each address (1.5 s per refill at 40,000 leases, measured). An address with a free
    // entry already (released after allocate_specific took it) keeps that entry.
    sqlx::query(
        "INSERT INTO kws_ipam.free_queue (pool, address, ready_at) \
         SELECT $1, a, '-infinity' FROM unnest($2::inet[]) AS a \
         WHERE NOT EXISTS (SELECT 1 FROM kws_ipam.leases l \
                           WHERE l.pool IS NOT DISTINCT FROM $1 AND l.address = a OFFSET 0) \
         ON CONFLICT (pool, address) DO NOTHING",
    )
    .persistent(false)
    .bind(pool)
    .bind(&addrs)
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    let exhausted = cursor.segment >= layout.segments().len();
    let next = (!exhausted).then(|| layout.addr_of(cursor.next));
    sqlx::query("UPDATE kws_ipam.pools SET cursor_segment = $2, cursor_next = $3 WHERE name = $1")
        .bind(pool)
        .bind(i32::try_from(cursor.segment).unwrap_or(i32::MAX))
        .bind(next)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    Ok(Refilled::Chunk { last })
}
