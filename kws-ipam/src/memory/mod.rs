//! `MemoryAllocator`: every pool in this process's memory. O(1) per operation: a FIFO free
//! queue, a cursor over the usable segments, and leases indexed by address and by owner.

mod free_queue;
mod lease_table;

use std::{
    net::IpAddr,
    sync::{Mutex, PoisonError, RwLock},
    time::{Duration, Instant},
};

use hashbrown::HashMap;
use kws_core::DnsLabel;

use crate::{
    Audit, Error, IpAllocator, Lease, LeaseOwner, PoolSpec, Usage,
    pool::{Cursor, PoolLayout},
};
use free_queue::FreeQueue;
use lease_table::LeaseTable;

/// An allocator whose pools live in this process (the embedded default; nothing persists).
///
/// Each pool sits behind its own mutex, held for a few hash-table operations per call.
#[derive(Debug, Default)]
pub struct MemoryAllocator {
    pools: RwLock<HashMap<DnsLabel, Mutex<PoolState>>>,
}

#[derive(Debug)]
struct PoolState {
    layout: PoolLayout,
    quarantine: Duration,
    cursor: Cursor,
    leases: LeaseTable,
    free: FreeQueue,
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
        let pools = self.pools.read().unwrap_or_else(PoisonError::into_inner);
        let state = pools.get(pool).ok_or_else(|| Error::PoolNotFound(pool.clone()))?;
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut state)
    }

    /// `allocate` without the async wrapper (the allocator never waits): the same operation,
    /// for callers that are not async.
    pub fn allocate_now(&self, pool: &DnsLabel, owner: &LeaseOwner) -> Result<Lease, Error> {
        let addr = self.allocate_addr(pool, owner)?;
        Ok(Lease { pool: pool.clone(), addr, owner: owner.clone() })
    }

    /// `release` without the async wrapper.
    pub fn release_now(&self, pool: &DnsLabel, addr: IpAddr) -> Result<Lease, Error> {
        let owner = self.with_pool(pool, |s| s.release(addr))?;
        Ok(Lease { pool: pool.clone(), addr, owner: LeaseOwner::trusted(owner.into_string()) })
    }

    /// `allocate`, answering only the address: the same operation without building a `Lease`
    /// (two string copies fewer), for hot paths that know the pool and owner already.
    pub fn allocate_addr(&self, pool: &DnsLabel, owner: &LeaseOwner) -> Result<IpAddr, Error> {
        self.with_pool(pool, |s| s.allocate(owner).map(|h| s.layout.addr_of(h)))
    }

    /// `release`, answering nothing: the same operation without building a `Lease`.
    pub fn release_addr(&self, pool: &DnsLabel, addr: IpAddr) -> Result<(), Error> {
        self.with_pool(pool, |s| s.release(addr).map(drop))
    }

    /// The free queue of `pool`, oldest release first (quarantined addresses included).
    pub fn free_queue(&self, pool: &DnsLabel) -> Result<Vec<IpAddr>, Error> {
        self.with_pool(pool, |s| Ok(s.free.iter().map(|h| s.layout.addr_of(h)).collect()))
    }

    /// Every lease of `pool`, in no particular order.
    pub fn leases(&self, pool: &DnsLabel) -> Result<Vec<Lease>, Error> {
        self.with_pool(pool, |s| {
            Ok(s.leases.iter().map(|(h, o)| s.lease(h, LeaseOwner::trusted(o.into()))).collect())
        })
    }

    /// The state of `pool` for invariant checks.
    pub fn audit(&self, pool: &DnsLabel) -> Result<Audit, Error> {
        self.with_pool(pool, |s| {
            let leases =
                s.leases.iter().map(|(h, o)| s.lease(h, LeaseOwner::trusted(o.into()))).collect();
            let free = s.free.iter().map(|h| s.layout.addr_of(h)).collect();
            Ok(Audit::new(&s.layout, s.cursor, leases, free))
        })
    }

    /// How many usable addresses of `pool` were never handed out (the cursor has not reached
    /// them and no `allocate_specific` took them).
    pub fn never_handed_out(&self, pool: &DnsLabel) -> Result<u128, Error> {
        self.with_pool(pool, |s| {
            let ahead = s.leases.iter().filter(|(h, _)| s.layout.is_ahead(&s.cursor, *h)).count()
                + s.free.iter().filter(|h| s.layout.is_ahead(&s.cursor, *h)).count();
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
        if let Some(host) = self.leases.held_by(owner.as_str()) {
            return Ok(host);
        }
        let host = match self.free.pop_ready(Instant::now) {
            Some(h) => h,
            None => {
                self.fresh().ok_or_else(|| Error::Exhausted { pool: self.layout.name().clone() })?
            }
        };
        self.leases.insert(host, owner.as_str());
        Ok(host)
    }

    /// The next host the cursor reaches that no `allocate_specific` took first. Each host is
    /// skipped at most once over the pool's life, so this is O(1) amortised.
    fn fresh(&mut self) -> Option<u128> {
        loop {
            let host = self.layout.advance(&mut self.cursor)?;
            if !self.leases.contains(host) && !self.free.contains(host) {
                return Some(host);
            }
        }
    }

    fn allocate_specific(&mut self, addr: IpAddr, owner: &LeaseOwner) -> Result<Lease, Error> {
        let host = self.layout.usable_host(addr)?;
        if let Some(holder) = self.leases.holder(host) {
            if holder == owner.as_str() {
                return Ok(self.lease(host, owner.clone()));
            }
            let holder = LeaseOwner::trusted(holder.into());
            return Err(Error::AlreadyAllocated { pool: self.layout.name().clone(), addr, holder });
        }
        if let Some(other) = self.leases.held_by(owner.as_str()) {
            let (pool, addr) = (self.layout.name().clone(), self.layout.addr_of(other));
            return Err(Error::OwnerHasLease { pool, owner: owner.clone(), addr });
        }
        self.free.remove(host);
        self.leases.insert(host, owner.as_str());
        Ok(self.lease(host, owner.clone()))
    }

    /// Ends the lease on `addr`, returning its owner.
    fn release(&mut self, addr: IpAddr) -> Result<Box<str>, Error> {
        let not_allocated = || Error::NotAllocated { pool: self.layout.name().clone(), addr };
        let host = self.layout.leasable_host(addr)?.ok_or_else(not_allocated)?;
        let owner = self.leases.remove(host).ok_or_else(not_allocated)?;
        let ready_at = (!self.quarantine.is_zero()).then(|| Instant::now() + self.quarantine);
        self.free.push(host, ready_at);
        Ok(owner)
    }

    fn lookup(&self, addr: IpAddr) -> Result<Option<Lease>, Error> {
        let Some(host) = self.layout.leasable_host(addr)? else { return Ok(None) };
        Ok(self.leases.holder(host).map(|o| self.lease(host, LeaseOwner::trusted(o.into()))))
    }
}

#[async_trait::async_trait]
impl IpAllocator for MemoryAllocator {
    async fn create_pool(&self, spec: PoolSpec) -> Result<(), Error> {
        let layout = PoolLayout::new(&spec)?;
        let mut pools = self.pools.write().unwrap_or_else(PoisonError::into_inner);
        if pools.contains_key(&spec.name) {
            return Err(Error::PoolExists(spec.name));
        }
        for (name, other) in pools.iter() {
            let other = other.lock().unwrap_or_else(PoisonError::into_inner);
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
            free: FreeQueue::default(),
        };
        pools.insert(spec.name, Mutex::new(state));
        Ok(())
    }

    async fn allocate(&self, pool: &DnsLabel, owner: &LeaseOwner) -> Result<Lease, Error> {
        self.allocate_now(pool, owner)
    }

    async fn allocate_specific(
        &self,
        pool: &DnsLabel,
        addr: IpAddr,
        owner: &LeaseOwner,
    ) -> Result<Lease, Error> {
        self.with_pool(pool, |s| s.allocate_specific(addr, owner))
    }

    async fn release(&self, pool: &DnsLabel, addr: IpAddr) -> Result<Lease, Error> {
        self.release_now(pool, addr)
    }

    async fn lookup(&self, pool: &DnsLabel, addr: IpAddr) -> Result<Option<Lease>, Error> {
        self.with_pool(pool, |s| s.lookup(addr))
    }

    async fn lookup_owner(
        &self,
        pool: &DnsLabel,
        owner: &LeaseOwner,
    ) -> Result<Option<Lease>, Error> {
        self.with_pool(pool, |s| {
            Ok(s.leases.held_by(owner.as_str()).map(|h| s.lease(h, owner.clone())))
        })
    }

    async fn usage(&self, pool: &DnsLabel) -> Result<Usage, Error> {
        self.with_pool(pool, |s| {
            let capacity = s.layout.capacity();
            let allocated = s.leases.len() as u128;
            Ok(Usage { capacity, allocated, free: capacity - allocated })
        })
    }
}
