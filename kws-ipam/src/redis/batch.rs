//! Group commit on Redis: the operations queued on one `RedisAllocator` run as one call of
//! `batch.lua` (one round trip, atomic), each caller getting its own operation's outcome.

use kws_core::DnsLabel;
use redis::{Script, aio::MultiplexedConnection};

use super::{PoolKeys, backend, hex, protocol};
use crate::group_commit::Flush;
use crate::{Error, LeaseOwner};

/// One operation of a batch.
#[derive(Debug)]
pub(crate) enum Op {
    /// Lease any ready address to the owner (its existing lease if it holds one).
    Allocate { pool: DnsLabel, owner: LeaseOwner },
    /// Lease exactly `host` to the owner.
    Specific { pool: DnsLabel, host: u128, owner: LeaseOwner },
    /// End the lease on `host`.
    Release { pool: DnsLabel, host: u128 },
}

impl Op {
    fn pool(&self) -> &DnsLabel {
        match self {
            Op::Allocate { pool, .. } | Op::Specific { pool, .. } | Op::Release { pool, .. } => {
                pool
            }
        }
    }
}

/// What the script answered for one operation: its kind (see `batch.lua`) and a value (a
/// host number or an owner; empty when the kind carries none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) kind: String,
    pub(crate) value: String,
}

/// Runs batches on a multiplexed connection.
#[derive(Debug)]
pub(crate) struct Batches {
    pub(crate) conn: MultiplexedConnection,
    pub(crate) prefix: String,
    pub(crate) script: Script,
}

impl Flush for Batches {
    type Item = Op;
    type Out = Result<Answer, Error>;

    async fn flush(&self, items: Vec<Op>) -> Vec<Result<Answer, Error>> {
        let n = items.len();
        let mut pools: Vec<&DnsLabel> = Vec::new();
        let mut inv = self.script.prepare_invoke();
        for op in &items {
            let number = match pools.iter().position(|p| *p == op.pool()) {
                Some(i) => i + 1,
                None => {
                    pools.push(op.pool());
                    for k in PoolKeys::new(&self.prefix, op.pool()).all() {
                        inv.key(k);
                    }
                    pools.len()
                }
            };
            let (code, host, owner) = match op {
                Op::Allocate { owner, .. } => ("a", None, owner.as_str()),
                Op::Specific { host, owner, .. } => ("s", Some(*host), owner.as_str()),
                Op::Release { host, .. } => ("r", Some(*host), ""),
            };
            inv.arg(code).arg(number).arg(host.map(hex).unwrap_or_default()).arg(owner);
        }
        let answered: Result<Vec<String>, _> = inv.invoke_async(&mut self.conn.clone()).await;
        match answered {
            Ok(flat) if flat.len() == 2 * n => {
                let mut it = flat.into_iter();
                std::iter::from_fn(|| Some(Ok(Answer { kind: it.next()?, value: it.next()? })))
                    .collect()
            }
            Ok(flat) => {
                let why = format!("batch answered {} values for {n} operations", flat.len());
                (0..n).map(|_| Err(protocol(why.clone()))).collect()
            }
            Err(e) => {
                let why = e.to_string();
                let mut out: Vec<_> = (1..n).map(|_| Err(protocol(why.clone()))).collect();
                out.insert(0, Err(backend(e)));
                out
            }
        }
    }
}
