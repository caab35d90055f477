//! `MemoryAllocator`: every pool in this process's memory. O(1) per operation: a FIFO free
//! queue, a cursor over the usable segments, and leases indexed by address and by owner.

mod free_queue;
mod lease_table;
mod pool_map;

use std::{
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use kws_core::DnsLabel;

use crate::{
    Audit, Error, IpAllocator, IpamFuture, Lease, LeaseOwner, PoolSpec, Usage,
    pool::{Cursor, PoolLayout},
};
use lease_table::LeaseTable;
use pool_map::PoolMap;

/// An allocator whose pools live in this process (the embedded default; nothing persists).
///
/// One mutex guards every pool, held for a few hash-table operations per call (tens of
/// nanoseconds): one lock per operation, where a read lock on the pool map then a lock on the
/// pool took two, and threads contended on the map's lock word anyway.
#[derive(Debug, Default)]
pub struct MemoryAllocator {
    pools: Mutex<PoolMap<PoolState>>,
}

#[derive(Debug)]
struct PoolState {
    layout: PoolLayout,
    quarantine: Duration,
    cursor: Cursor,
    leases: LeaseTable,
}

impl MemoryAllocator {
    /// An allocator with no pools.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_pool<T>(
        &self,
        pool: &DnsLabel,
        f: impl FnOnce(&mut PoolState) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        let state = pools.get_mut(pool).ok_or_else(|| Error::PoolNotFound(pool.clone()))?;
        f(state)
    }

    /// `allocate` without the async wrapper (the allocator never waits): the same operation,
    /// for callers that are not async.
    pub fn allocate_now(&self, pool: &DnsLabel, owner: &LeaseOwner) -> Result<Lease, Error> {
        // The lease is built where the host number is known: an `IpAddr` (17 bytes, unaligned)
        // passed up through one more return costs more than the rest of the copy.
        self.with_pool(pool, |s| {
            let host = s.allocate(owner)?;
            Ok(Lease { pool: pool.clone(), addr: s.layout.addr_of(host), owner: owner.clone() })
        })
    }

    /// `release` without the async wrapper.
    pub fn release_now(&self, pool: &DnsLabel, addr: IpAddr) -> Result<Lease, Error> {
        self.with_pool(pool, |s| {
            let owner = LeaseOwner::shared(s.release(addr)?);
            Ok(Lease { pool: pool.clone(), addr, owner })
        })
    }

    /// `allocate`, answering only the address: the same operation without building a `Lease`,
    /// for hot paths that know the pool and owner already.
    pub fn allocate_addr(&self, pool: &DnsLabel, owner: &LeaseOwner) -> Result<IpAddr, Error> {
        self.with_pool(pool, |s| s.allocate(owner).map(|h| s.layout.addr_of(h)))
    }

    /// `release`, answering nothing: the same operation without building a `Lease`.
    pub fn release_addr(&self, pool: &DnsLabel, addr: IpAddr) -> Result<(), Error> {
        self.with_pool(pool, |s| s.release(addr).map(drop))
    }

    /// The free queue of `pool`, oldest release first (quarantined addresses included).
    pub fn free_queue(&self, pool: &DnsLabel) -> Result<Vec<IpAddr>, Error> {
        self.with_pool(pool, |s| Ok(s.leases.queued().map(|h| s.layout.addr_of(h)).collect()))
    }

    /// Every lease of `pool`, in no particular order.
    pub fn leases(&self, pool: &DnsLabel) -> Result<Vec<Lease>, Error> {
        self.with_pool(pool, |s| {
            Ok(s.leases.leases().map(|(h, o)| s.lease(h, LeaseOwner::shared(o.clone()))).collect())
        })
    }

    /// The state of `pool` for invariant checks.
    pub fn audit(&self, pool: &DnsLabel) -> Result<Audit, Error> {
        self.with_pool(pool, |s| {
            let leases =
                s.leases.leases().map(|(h, o)| s.lease(h, LeaseOwner::shared(o.clone()))).collect();
            let free = s.leases.queued().map(|h| s.layout.addr_of(h)).collect();
            Ok(Audit::new(&s.layout, s.cursor, leases, free))
        })
    }

    /// How many usable addresses of `pool` were never handed out (the cursor has not reached
    /// them and no `allocate_specific` took them).
    pub fn never_handed_out(&self, pool: &DnsLabel) -> Result<u128, Error> {
        self.with_pool(pool, |s| {
            let ahead = s.leases.hosts().filter(|h| s.layout.is_ahead(&s.cursor, *h)).count();
            Ok(s.layout.remaining(&s.cursor) - ahead as u128)
        })
    }

    /// Bytes the lease indexes of `pool` hold, not counting owner strings (for the
    /// memory-per-lease figure).
    pub fn lease_index_bytes(&self, pool: &DnsLabel) -> Result<usize, Error> {
        self.with_pool(pool, |s| Ok(s.leases.heap_bytes()))
    }
}

impl PoolState {
    fn lease(&self, host: u128, owner: LeaseOwner) -> Lease {
        Lease { pool: self.layout.name().clone(), addr: self.layout.addr_of(host), owner }
    }

    /// The host `owner` holds, or a newly leased one.
    fn allocate(&mut self, owner: &LeaseOwner) -> Result<u128, Error> {
        let (hash, held) = self.leases.held_by(owner.as_str());
        if let Some(host) = held {
            return Ok(host);
        }
        if let Some(host) = self.leases.lease_queued(owner.as_shared(), hash, Instant::now) {
            return Ok(host);
        }
        let host =
            self.fresh().ok_or_else(|| Error::Exhausted { pool: self.layout.name().clone() })?;
        self.leases.lease(host, owner.as_shared().clone(), hash);
        Ok(host)
    }

    /// The next host the cursor reaches that no `allocate_specific` took first. Each host is
    /// skipped at most once over the pool's life, so this is O(1) amortised.
    fn fresh(&mut self) -> Option<u128> {
        loop {
            let host = self.layout.advance(&mut self.cursor)?;
            if !self.leases.knows(host) {
                return Some(host);
            }
        }
    }

    fn allocate_specific(&mut self, addr: IpAddr, owner: &LeaseOwner) -> Result<Lease, Error> {
        let host = self.layout.usable_host(addr)?;
        if let Some(holder) = self.leases.holder(host) {
            if **holder == *owner.as_str() {
                return Ok(self.lease(host, owner.clone()));
            }
            let holder = LeaseOwner::shared(holder.clone());
            return Err(Error::AlreadyAllocated { pool: self.layout.name().clone(), addr, holder });
        }
        let (hash, held) = self.leases.held_by(owner.as_str());
        if let Some(other) = held {
            let (pool, addr) = (self.layout.name().clone(), self.layout.addr_of(other));
            return Err(Error::OwnerHasLease { pool, owner: owner.clone(), addr });
        }
        self.leases.lease(host, owner.as_shared().clone(), hash);
        Ok(self.lease(host, owner.clone()))
    }

    /// Ends the lease on `addr`, returning its owner.
    fn release(&mut self, addr: IpAddr) -> Result<Arc<str>, Error> {
        let not_allocated = || Error::NotAllocated { pool: self.layout.name().clone(), addr };
        let host = self.layout.leasable_host(addr)?.ok_or_else(not_allocated)?;
        let ready_at = (!self.quarantine.is_zero()).then(|| Instant::now() + self.quarantine);
        self.leases.release(host, ready_at).ok_or_else(not_allocated)
    }

    fn lookup(&self, addr: IpAddr) -> Result<Option<Lease>, Error> {
        let Some(host) = self.layout.leasable_host(addr)? else { return Ok(None) };
        Ok(self.leases.holder(host).map(|o| self.lease(host, LeaseOwner::shared(o.clone()))))
    }
}

impl MemoryAllocator {
    fn create_pool_now(&self, spec: PoolSpec) -> Result<(), Error> {
        let layout = PoolLayout::new(&spec)?;
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        if pools.contains(&spec.name) {
            return Err(Error::PoolExists(spec.name));
        }
        for (name, other) in pools.iter() {
            if other.layout.overlaps(&layout) {
                return Err(Error::InvalidPool(format!(
                    "pool {} ({}) overlaps pool {name} ({})",
                    spec.name,
                    spec.prefix,
                    other.layout.prefix()
                )));
            }
        }
        let cursor = layout.start();
        let state = PoolState {
            layout,
            quarantine: spec.quarantine,
            cursor,
            leases: LeaseTable::default(),
        };
        pools.insert(spec.name, state);
        Ok(())
    }

    fn usage_now(&self, pool: &DnsLabel) -> Result<Usage, Error> {
        self.with_pool(pool, |s| {
            let capacity = s.layout.capacity();
            let allocated = s.leases.len() as u128;
            Ok(Usage { capacity, allocated, free: capacity - allocated })
        })
    }
}

/// Every operation completes when the method is called and returns a ready [`IpamFuture`]: no
/// future is boxed, and dropping the future does not undo the operation.
impl IpAllocator for MemoryAllocator {
    fn create_pool(&self, spec: PoolSpec) -> IpamFuture<'_, ()> {
        IpamFuture::ready(self.create_pool_now(spec))
    }

    fn allocate<'a>(&'a self, pool: &'a DnsLabel, owner: &'a LeaseOwner) -> IpamFuture<'a, Lease> {
        IpamFuture::ready(self.allocate_now(pool, owner))
    }

    fn allocate_specific<'a>(
        &'a self,
        pool: &'a DnsLabel,
        addr: IpAddr,
        owner: &'a LeaseOwner,
    ) -> IpamFuture<'a, Lease> {
        IpamFuture::ready(self.with_pool(pool, |s| s.allocate_specific(addr, owner)))
    }

    fn release<'a>(&'a self, pool: &'a DnsLabel, addr: IpAddr) -> IpamFuture<'a, Lease> {
        IpamFuture::ready(self.release_now(pool, addr))
    }

    fn lookup<'a>(&'a self, pool: &'a DnsLabel, addr: IpAddr) -> IpamFuture<'a, Option<Lease>> {
        IpamFuture::ready(self.with_pool(pool, |s| s.lookup(addr)))
    }

    fn lookup_owner<'a>(
        &'a self,
        pool: &'a DnsLabel,
        owner: &'a LeaseOwner,
    ) -> IpamFuture<'a, Option<Lease>> {
        IpamFuture::ready(self.with_pool(pool, |s| {
            Ok(s.leases.held_by(owner.as_str()).1.map(|h| s.lease(h, owner.clone())))
        }))
    }

    fn usage<'a>(&'a self, pool: &'a DnsLabel) -> IpamFuture<'a, Usage> {
        IpamFuture::ready(self.usage_now(pool))
    }
}
