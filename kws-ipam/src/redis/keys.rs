//! The Redis keys of a pool.

use kws_core::DnsLabel;

/// The registry of pools (name -> family and address range), for the overlap check.
pub(crate) fn registry(prefix: &str) -> String {
    format!("{prefix}ipam:pools")
}

/// The keys of one pool, in the order the scripts take them.
#[derive(Debug, Clone)]
pub(crate) struct PoolKeys {
    /// Hash: quarantine, capacity, spec, nseg, cseg, cnext, seq, allocated.
    pub(crate) meta: String,
    /// List of usable segments, `first last` in hex.
    pub(crate) segs: String,
    /// Hash: host -> owner.
    pub(crate) leases: String,
    /// Hash: owner -> host.
    pub(crate) owners: String,
    /// List of released `host|seq|ready_ms`, oldest first.
    pub(crate) queue: String,
    /// Hash: host -> seq of its live queue entry.
    pub(crate) queued: String,
}

impl PoolKeys {
    pub(crate) fn new(prefix: &str, pool: &DnsLabel) -> Self {
        let k = |what: &str| format!("{prefix}ipam:pool:{pool}:{what}");
        Self {
            meta: k("meta"),
            segs: k("segs"),
            leases: k("leases"),
            owners: k("owners"),
            queue: k("queue"),
            queued: k("queued"),
        }
    }

    pub(crate) fn all(&self) -> [&str; 6] {
        [&self.meta, &self.segs, &self.leases, &self.owners, &self.queue, &self.queued]
    }
}
