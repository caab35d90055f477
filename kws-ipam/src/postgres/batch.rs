//! Group commit on PostgreSQL: the operations queued on one `PostgresAllocator` run as one
//! call of `kws_ipam.batch`, one transaction, one durable commit; each caller gets its own
//! operation's outcome only after that commit.

use std::{net::IpAddr, sync::Arc};

use kws_core::DnsLabel;
use sqlx::PgPool;

use super::{ATTEMPTS, contention::Counters};
use crate::group_commit::Flush;
use crate::{Error, LeaseOwner};

/// One operation of a batch.
#[derive(Debug)]
pub(crate) enum Op {
    /// Lease any ready address to the owner (its existing lease if it holds one).
    Allocate { pool: DnsLabel, owner: LeaseOwner },
    /// Lease `addr`, a fast-path candidate, to the owner; only from queue entry `id` when set.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Claim { pool: DnsLabel, addr: IpAddr, id: Option<i64>, owner: LeaseOwner },
    /// Lease exactly `addr` to the owner.
    Specific { pool: DnsLabel, addr: IpAddr, owner: LeaseOwner },
    /// End the lease on `addr`.
    Release { pool: DnsLabel, addr: IpAddr },
}

/// What `kws_ipam.batch` answered for one operation: its kind (see the migration), then an
/// address, a text (an owner) or a queue entry id, when the kind carries one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) kind: String,
    pub(crate) addr: Option<IpAddr>,
    pub(crate) text: Option<String>,
    pub(crate) id: Option<i64>,
}

/// A row of `kws_ipam.batch`: kind, address, text, id.
type Row = (String, Option<IpAddr>, Option<String>, Option<i64>);

/// Runs batches on a connection pool, counting the rollbacks they run again after.
#[derive(Debug)]
pub(crate) struct Batches {
    pub(crate) db: PgPool,
    pub(crate) counters: Arc<Counters>,
}

impl Flush for Batches {
    type Item = Op;
    type Out = Result<Answer, Error>;

    async fn flush(&self, items: Vec<Op>) -> Vec<Result<Answer, Error>> {
        let n = items.len();
        let mut ops = Vec::with_capacity(n);
        let mut pools = Vec::with_capacity(n);
        let mut addrs: Vec<Option<IpAddr>> = Vec::with_capacity(n);
        let mut owners: Vec<Option<&str>> = Vec::with_capacity(n);
        let mut ids: Vec<Option<i64>> = Vec::with_capacity(n);
        for item in &items {
            let (op, pool, addr, owner, id) = match item {
                Op::Allocate { pool, owner } => ("a", pool, None, Some(owner), None),
                Op::Claim { pool, addr, id, owner } => ("c", pool, Some(*addr), Some(owner), *id),
                Op::Specific { pool, addr, owner } => ("s", pool, Some(*addr), Some(owner), None),
                Op::Release { pool, addr } => ("r", pool, Some(*addr), None, None),
            };
            ops.push(op);
            pools.push(pool.as_str());
            addrs.push(addr);
            owners.push(owner.map(LeaseOwner::as_str));
            ids.push(id);
        }
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                self.counters.count_batch_retry();
            }
            // One statement outside an explicit transaction: one transaction, committed (and,
            // with synchronous_commit on, flushed) before the rows come back.
            let rows: Result<Vec<Row>, _> = sqlx::query_as(
                "SELECT o_kind, o_addr, o_text, o_id FROM kws_ipam.batch($1, $2, $3, $4, $5)",
            )
            .bind(&ops)
            .bind(&pools)
            .bind(&addrs)
            .bind(&owners)
            .bind(&ids)
            .fetch_all(&self.db)
            .await;
            match rows {
                Ok(rows) if rows.len() == n => {
                    return rows
                        .into_iter()
                        .map(|(kind, addr, text, id)| Ok(Answer { kind, addr, text, id }))
                        .collect();
                }
                Ok(rows) => {
                    let e =
                        format!("kws_ipam.batch answered {} rows for {n} operations", rows.len());
                    return fail_all(n, &e);
                }
                // A deadlock or serialization failure rolled the whole batch back: run it again.
                Err(e) if self.counters.count_rollback(&e) => last = Some(e),
                Err(e) => return fail_all(n, &e.to_string()),
            }
        }
        let why = last.map_or_else(String::new, |e| e.to_string());
        fail_all(n, &format!("batch gave up after {ATTEMPTS} attempts lost to races: {why}"))
    }
}

fn fail_all(n: usize, why: &str) -> Vec<Result<Answer, Error>> {
    (0..n).map(|_| Err(Error::Backend { backend: "postgres", source: why.into() })).collect()
}
