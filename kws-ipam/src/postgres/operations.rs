//! The operations of `PostgresAllocator`: each submits its item to the next batch and reads
//! its answer (see `kws_ipam.batch` in migration 20261202000001_kws_ipam_lock_order.sql); a
//! lock held by another transaction is waited for outside any batch, then the item is
//! submitted again.

use std::net::IpAddr;

use kws_core::DnsLabel;

use super::{
    Claim, PostgresAllocator, backend,
    batch::Op,
    contention::{Budget, Held},
    protocol,
    refill::Refilled,
};
use crate::{Error, IpAllocator, IpamFuture, Lease, LeaseOwner, PoolSpec, Usage};

impl PostgresAllocator {
    /// Leases `addr`, a candidate from a fast path, to `owner`: only from the free-queue entry
    /// `id` when given (a copy of an older entry is stale).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) async fn claim(
        &self,
        pool: &DnsLabel,
        (addr, id): (IpAddr, Option<i64>),
        owner: &LeaseOwner,
    ) -> Result<Claim, Error> {
        let op = Op::Claim { pool: pool.clone(), addr, id, owner: owner.clone() };
        let a = self.run(op).await?;
        match (a.kind.as_str(), a.addr) {
            ("new", _) => Ok(Claim::Leased),
            ("held", Some(held)) => Ok(Claim::Held(held)),
            ("stale", _) => Ok(Claim::Stale),
            _ => Err(protocol(format!("claim answered {a:?}"))),
        }
    }

    /// Allocates through the PostgreSQL queues, refilling from the cursor when they are empty.
    /// `Exhausted` only after a batch found no ready entry at all, locked or not, and the
    /// refill found the cursor at its end: an entry another transaction holds is waited for.
    pub(crate) async fn allocate_in_db(
        &self,
        pool: &DnsLabel,
        owner: &LeaseOwner,
    ) -> Result<Lease, Error> {
        let layout = self.layout(pool).await?;
        let mut budget = Budget::new(pool);
        loop {
            let a = self.run(Op::Allocate { pool: pool.clone(), owner: owner.clone() }).await?;
            if let Some(held) = Held::from_answer(&a.kind, a.addr, a.text.as_deref()) {
                budget.wait(&self.db, &self.counters, held).await?;
                continue;
            }
            match (a.kind.as_str(), a.addr) {
                ("held" | "new", Some(addr)) => {
                    if a.kind == "new" {
                        self.top_up_if_low(&layout, addr);
                    }
                    return Ok(Lease { pool: pool.clone(), addr, owner: owner.clone() });
                }
                ("empty", _) => {
                    if self.refill(&layout, 1).await? == Refilled::Exhausted {
                        return Err(Error::Exhausted { pool: pool.clone() });
                    }
                    budget.attempt()?;
                }
                ("nopool", _) => return Err(Error::PoolNotFound(pool.clone())),
                _ => return Err(protocol(format!("allocate answered {a:?}"))),
            }
        }
    }

    /// Releases `addr` (after checking it against the layout); returns the ended lease and the
    /// id of the free-queue entry it made.
    pub(crate) async fn release_entry(
        &self,
        pool: &DnsLabel,
        addr: IpAddr,
    ) -> Result<(Lease, Option<i64>), Error> {
        if self.layout(pool).await?.leasable_host(addr)?.is_none() {
            return Err(Error::NotAllocated { pool: pool.clone(), addr });
        }
        let mut budget = Budget::new(pool);
        loop {
            let answer = self.run(Op::Release { pool: pool.clone(), addr }).await?;
            if let Some(held) = Held::from_answer(&answer.kind, answer.addr, answer.text.as_deref())
            {
                budget.wait(&self.db, &self.counters, held).await?;
                continue;
            }
            return match (answer.kind.as_str(), answer.text) {
                ("released", Some(o)) => {
                    let lease = Lease { pool: pool.clone(), addr, owner: LeaseOwner::trusted(o) };
                    Ok((lease, answer.id))
                }
                ("notallocated", _) => Err(Error::NotAllocated { pool: pool.clone(), addr }),
                (kind, text) => Err(protocol(format!("release answered {kind} {text:?}"))),
            };
        }
    }

    async fn allocate_specific_in_db(
        &self,
        pool: &DnsLabel,
        addr: IpAddr,
        owner: &LeaseOwner,
    ) -> Result<Lease, Error> {
        self.layout(pool).await?.usable_host(addr)?;
        let op = Op::Specific { pool: pool.clone(), addr, owner: owner.clone() };
        let a = self.run(op).await?;
        let ok = || Lease { pool: pool.clone(), addr, owner: owner.clone() };
        match (a.kind.as_str(), a.addr, a.text) {
            ("new", _, _) => Ok(ok()),
            // The owner holds exactly this address: allocate_specific is idempotent too.
            ("taken", _, Some(holder)) if holder == owner.as_str() => Ok(ok()),
            ("taken", _, Some(holder)) => {
                let holder = LeaseOwner::trusted(holder);
                Err(Error::AlreadyAllocated { pool: pool.clone(), addr, holder })
            }
            ("owner", Some(held), _) => {
                let owner = owner.clone();
                Err(Error::OwnerHasLease { pool: pool.clone(), owner, addr: held })
            }
            (kind, held, text) => {
                Err(protocol(format!("allocate_specific answered {kind} {held:?} {text:?}")))
            }
        }
    }
}

impl IpAllocator for PostgresAllocator {
    fn create_pool<'a>(&'a self, spec: PoolSpec) -> IpamFuture<'a, ()> {
        IpamFuture::boxed(async move { super::refill::create_pool(&self.db, spec).await })
    }

    fn allocate<'a>(&'a self, pool: &'a DnsLabel, owner: &'a LeaseOwner) -> IpamFuture<'a, Lease> {
        IpamFuture::boxed(async move { self.allocate_in_db(pool, owner).await })
    }

    fn allocate_specific<'a>(
        &'a self,
        pool: &'a DnsLabel,
        addr: IpAddr,
        owner: &'a LeaseOwner,
    ) -> IpamFuture<'a, Lease> {
        IpamFuture::boxed(async move { self.allocate_specific_in_db(pool, addr, owner).await })
    }

    fn release<'a>(&'a self, pool: &'a DnsLabel, addr: IpAddr) -> IpamFuture<'a, Lease> {
        IpamFuture::boxed(async move { Ok(self.release_entry(pool, addr).await?.0) })
    }

    fn lookup<'a>(&'a self, pool: &'a DnsLabel, addr: IpAddr) -> IpamFuture<'a, Option<Lease>> {
        IpamFuture::boxed(async move {
            if self.layout(pool).await?.leasable_host(addr)?.is_none() {
                return Ok(None);
            }
            // The pool is a filter that no index serves, so only leases_address can answer
            // (see migration 20261126000005_kws_ipam_lease_probes.sql).
            let owner: Option<String> = sqlx::query_scalar(
                "SELECT owner FROM kws_ipam.leases \
                 WHERE pool IS NOT DISTINCT FROM $1 AND address = $2",
            )
            .bind(pool.as_str())
            .bind(addr)
            .fetch_optional(&self.db)
            .await
            .map_err(backend)?;
            Ok(owner.map(|o| Lease { pool: pool.clone(), addr, owner: LeaseOwner::trusted(o) }))
        })
    }

    fn lookup_owner<'a>(
        &'a self,
        pool: &'a DnsLabel,
        owner: &'a LeaseOwner,
    ) -> IpamFuture<'a, Option<Lease>> {
        IpamFuture::boxed(async move {
            self.layout(pool).await?;
            // Only leases_owner can answer, as in `lookup`.
            let addr: Option<IpAddr> = sqlx::query_scalar(
                "SELECT address FROM kws_ipam.leases \
                 WHERE pool IS NOT DISTINCT FROM $1 AND owner = $2",
            )
            .bind(pool.as_str())
            .bind(owner.as_str())
            .fetch_optional(&self.db)
            .await
            .map_err(backend)?;
            Ok(addr.map(|addr| Lease { pool: pool.clone(), addr, owner: owner.clone() }))
        })
    }

    fn usage<'a>(&'a self, pool: &'a DnsLabel) -> IpamFuture<'a, Usage> {
        IpamFuture::boxed(async move {
            let capacity = self.layout(pool).await?.capacity();
            // The sum of the pool's 32 counter stripes, whatever its size.
            let allocated: Option<i64> = sqlx::query_scalar(
                "SELECT sum(allocated)::bigint FROM kws_ipam.usage_stripes WHERE pool = $1",
            )
            .bind(pool.as_str())
            .fetch_one(&self.db)
            .await
            .map_err(backend)?;
            let Some(allocated) = allocated else { return Err(Error::PoolNotFound(pool.clone())) };
            let allocated = u128::try_from(allocated).unwrap_or(0);
            Ok(Usage { capacity, allocated, free: capacity.saturating_sub(allocated) })
        })
    }
}
