//! Reading a pool's whole state for invariant checks.

use std::collections::HashMap;

use kws_core::DnsLabel;

use super::{RedisAllocator, backend, protocol, unhex};
use crate::{Audit, Error, Lease, LeaseOwner, pool::Cursor};

/// Leases, queue, queue membership and cursor of a pool, as Redis returns them.
type RawPool = (
    HashMap<String, String>,
    Vec<String>,
    HashMap<String, String>,
    (Option<usize>, Option<String>),
);

impl RedisAllocator {
    /// The state of `pool` for invariant checks, read in one MULTI.
    pub async fn audit(&self, pool: &DnsLabel) -> Result<Audit, Error> {
        let layout = self.layout(pool).await?;
        let k = self.keys(pool);
        let (leases, queue, queued, cur): RawPool = redis::pipe()
            .atomic()
            .hgetall(&k.leases)
            .lrange(&k.queue, 0, -1)
            .hgetall(&k.queued)
            .hget(&k.meta, &["cseg", "cnext"])
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        let mut out = Vec::with_capacity(leases.len());
        for (h, o) in leases {
            let addr = layout.addr_of(unhex(&h)?);
            out.push(Lease { pool: pool.clone(), addr, owner: LeaseOwner::trusted(o) });
        }
        let mut free = Vec::new();
        for entry in queue {
            let mut parts = entry.split('|');
            let (Some(h), Some(seq)) = (parts.next(), parts.next()) else {
                return Err(protocol(format!("bad queue entry {entry:?}")));
            };
            if queued.get(h).map(String::as_str) == Some(seq) {
                free.push(layout.addr_of(unhex(h)?));
            }
        }
        let cursor = match cur {
            (Some(seg), Some(next)) if seg >= 1 && seg <= layout.segments().len() => {
                Cursor { segment: seg - 1, next: unhex(&next)? }
            }
            _ => Cursor { segment: layout.segments().len(), next: 0 },
        };
        Ok(Audit::new(&layout, cursor, out, free))
    }
}
