//! `PostgresAllocator`: pools in PostgreSQL (sqlx, migrations under `kws-ipam/migrations`).
//!
//! Each operation is one call of a PL/pgSQL function: one round trip, one transaction. The
//! lease row is the commit point (`UNIQUE (pool, address)`, `UNIQUE (pool, owner)`); released
//! addresses are taken from `free_queue` with `FOR UPDATE SKIP LOCKED`, fresh ones from `fresh`,
//! which a short transaction of its own refills from the persisted cursor 64 addresses at a time
//! (the only moment the pool row is locked).

mod maintenance;
mod refill;

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, PoisonError, RwLock},
};

use kws_core::DnsLabel;
use sqlx::PgPool;

use crate::{Error, IpAllocator, Lease, LeaseOwner, PoolSpec, Usage, pool::PoolLayout};

/// Fresh addresses moved from the cursor to the `fresh` table per refill.
const CHUNK: usize = 64;
/// Attempts of an operation that lost a race it can retry (SQLSTATE 40001).
const ATTEMPTS: usize = 50;

/// An allocator whose pools live in PostgreSQL; any number of processes may share it.
#[derive(Debug, Clone)]
pub struct PostgresAllocator {
    db: PgPool,
    layouts: Arc<RwLock<HashMap<DnsLabel, Arc<PoolLayout>>>>,
}

pub(crate) fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Backend { backend: "postgres", source: Box::new(e) }
}

fn is_retryable(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "40001" || c == "40P01")
}

/// What `kws_ipam.allocate` answered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The owner's existing lease, or a new one.
    Leased(IpAddr),
    /// Nothing ready in the queues.
    Empty,
}

/// What `kws_ipam.claim` answered about a fast-path candidate.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The candidate is now leased to the owner.
    Leased,
    /// The owner already held this address; the candidate is untouched.
    Held(IpAddr),
    /// The candidate was not ready in the free queue (taken, leased, or in quarantine).
    Stale,
}

impl PostgresAllocator {
    /// Uses `db`, applying the crate's migrations first (idempotent; safe from many processes
    /// at once).
    pub async fn new(db: PgPool) -> Result<Self, Error> {
        let mut migrator = sqlx::migrate!("./migrations");
        // Other crates may keep their own migrations in the same database.
        migrator.set_ignore_missing(true);
        migrator.run(&db).await.map_err(backend)?;
        Ok(Self { db, layouts: Arc::default() })
    }

    /// Connects to `url` with at most `max_connections` connections, then as [`Self::new`].
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, Error> {
        let db = sqlx::postgres::PgPoolOptions::new()
            .max_connections(max_connections)
            .connect(url)
            .await
            .map_err(backend)?;
        Self::new(db).await
    }

    /// The connection pool.
    pub fn db(&self) -> &PgPool {
        &self.db
    }

    /// The layout of `pool`, from the cache or the `pools` table (pools never change).
    pub(crate) async fn layout(&self, pool: &DnsLabel) -> Result<Arc<PoolLayout>, Error> {
        if let Some(l) = self.layouts.read().unwrap_or_else(PoisonError::into_inner).get(pool) {
            return Ok(l.clone());
        }
        let row: Option<(sqlx::types::Json<PoolSpec>,)> =
            sqlx::query_as("SELECT spec FROM kws_ipam.pools WHERE name = $1")
                .bind(pool.as_str())
                .fetch_optional(&self.db)
                .await
                .map_err(backend)?;
        let Some((spec,)) = row else { return Err(Error::PoolNotFound(pool.clone())) };
        let layout = Arc::new(PoolLayout::new(&spec.0)?);
        let mut cache = self.layouts.write().unwrap_or_else(PoisonError::into_inner);
        cache.insert(pool.clone(), layout.clone());
        Ok(layout)
    }

    /// One call of `kws_ipam.allocate`, retried when it lost a race.
    pub(crate) async fn allocate_once(
        &self,
        pool: &DnsLabel,
        owner: &LeaseOwner,
    ) -> Result<Outcome, Error> {
        for _ in 0..ATTEMPTS {
            let row: Result<(Option<IpAddr>, String), _> =
                sqlx::query_as("SELECT address, outcome FROM kws_ipam.allocate($1, $2)")
                    .bind(pool.as_str())
                    .bind(owner.as_str())
                    .fetch_one(&self.db)
                    .await;
            match row {
                Ok((Some(addr), _)) => return Ok(Outcome::Leased(addr)),
                Ok((None, o)) if o == "nopool" => return Err(Error::PoolNotFound(pool.clone())),
                Ok((None, _)) => return Ok(Outcome::Empty),
                Err(e) if is_retryable(&e) => continue,
                Err(e) => return Err(backend(e)),
            }
        }
        Err(retries_exhausted(pool))
    }

    /// One call of `kws_ipam.claim`: leases `addr`, a candidate from a fast path.
    pub(crate) async fn claim(
        &self,
        pool: &DnsLabel,
        addr: IpAddr,
        owner: &LeaseOwner,
    ) -> Result<Claim, Error> {
        for _ in 0..ATTEMPTS {
            let row: Result<(IpAddr, String), _> =
                sqlx::query_as("SELECT address, outcome FROM kws_ipam.claim($1, $2, $3)")
                    .bind(pool.as_str())
                    .bind(addr)
                    .bind(owner.as_str())
                    .fetch_one(&self.db)
                    .await;
            match row {
                Ok((_, o)) if o == "stale" => return Ok(Claim::Stale),
                Ok((a, o)) if o == "held" => return Ok(Claim::Held(a)),
                Ok(_) => return Ok(Claim::Leased),
                Err(e) if is_retryable(&e) => continue,
                Err(e) => return Err(backend(e)),
            }
        }
        Err(retries_exhausted(pool))
    }

    /// Allocates through the PostgreSQL queues, refilling from the cursor when they are empty.
    pub(crate) async fn allocate_in_db(
        &self,
        pool: &DnsLabel,
        owner: &LeaseOwner,
    ) -> Result<Lease, Error> {
        let layout = self.layout(pool).await?;
        for _ in 0..ATTEMPTS {
            match self.allocate_once(pool, owner).await? {
                Outcome::Leased(addr) => {
                    return Ok(Lease { pool: pool.clone(), addr, owner: owner.clone() });
                }
                Outcome::Empty => {
                    if !refill::refill(&self.db, &layout, CHUNK).await? {
                        return Err(Error::Exhausted { pool: pool.clone() });
                    }
                }
            }
        }
        Err(retries_exhausted(pool))
    }
}

fn retries_exhausted(pool: &DnsLabel) -> Error {
    Error::Backend {
        backend: "postgres",
        source: format!("pool {pool}: gave up after {ATTEMPTS} attempts lost to races").into(),
    }
}

#[async_trait::async_trait]
impl IpAllocator for PostgresAllocator {
    async fn create_pool(&self, spec: PoolSpec) -> Result<(), Error> {
        refill::create_pool(&self.db, spec).await
    }

    async fn allocate(&self, pool: &DnsLabel, owner: &LeaseOwner) -> Result<Lease, Error> {
        self.allocate_in_db(pool, owner).await
    }

    async fn allocate_specific(
        &self,
        pool: &DnsLabel,
        addr: IpAddr,
        owner: &LeaseOwner,
    ) -> Result<Lease, Error> {
        self.layout(pool).await?.usable_host(addr)?;
        for _ in 0..ATTEMPTS {
            let row: Result<(String, IpAddr), _> =
                sqlx::query_as("SELECT holder, held FROM kws_ipam.allocate_specific($1, $2, $3)")
                    .bind(pool.as_str())
                    .bind(addr)
                    .bind(owner.as_str())
                    .fetch_one(&self.db)
                    .await;
            let (holder, held) = match row {
                Ok(r) => r,
                Err(e) if is_retryable(&e) => continue,
                Err(e) => return Err(backend(e)),
            };
            return specific_outcome(pool, addr, owner, holder, held);
        }
        Err(retries_exhausted(pool))
    }

    async fn release(&self, pool: &DnsLabel, addr: IpAddr) -> Result<Lease, Error> {
        release_checked(self, pool, addr).await
    }

    async fn lookup(&self, pool: &DnsLabel, addr: IpAddr) -> Result<Option<Lease>, Error> {
        if self.layout(pool).await?.leasable_host(addr)?.is_none() {
            return Ok(None);
        }
        let owner: Option<String> = sqlx::query_scalar(
            "SELECT owner FROM kws_ipam.leases WHERE pool = $1 AND address = $2",
        )
        .bind(pool.as_str())
        .bind(addr)
        .fetch_optional(&self.db)
        .await
        .map_err(backend)?;
        Ok(owner.map(|o| Lease { pool: pool.clone(), addr, owner: LeaseOwner::trusted(o) }))
    }

    async fn lookup_owner(
        &self,
        pool: &DnsLabel,
        owner: &LeaseOwner,
    ) -> Result<Option<Lease>, Error> {
        self.layout(pool).await?;
        let addr: Option<IpAddr> = sqlx::query_scalar(
            "SELECT address FROM kws_ipam.leases WHERE pool = $1 AND owner = $2",
        )
        .bind(pool.as_str())
        .bind(owner.as_str())
        .fetch_optional(&self.db)
        .await
        .map_err(backend)?;
        Ok(addr.map(|addr| Lease { pool: pool.clone(), addr, owner: owner.clone() }))
    }

    async fn usage(&self, pool: &DnsLabel) -> Result<Usage, Error> {
        let capacity = self.layout(pool).await?.capacity();
        // An index-only count: O(leases), the one operation that is not O(1) here (a shared
        // counter would be the hot row every allocation waits on).
        let allocated: i64 =
            sqlx::query_scalar("SELECT count(*) FROM kws_ipam.leases WHERE pool = $1")
                .bind(pool.as_str())
                .fetch_one(&self.db)
                .await
                .map_err(backend)?;
        let allocated = u128::try_from(allocated).unwrap_or(0);
        Ok(Usage { capacity, allocated, free: capacity.saturating_sub(allocated) })
    }
}

/// Release through `kws_ipam.release` after checking the address against the layout.
pub(crate) async fn release_checked(
    a: &PostgresAllocator,
    pool: &DnsLabel,
    addr: IpAddr,
) -> Result<Lease, Error> {
    if a.layout(pool).await?.leasable_host(addr)?.is_none() {
        return Err(Error::NotAllocated { pool: pool.clone(), addr });
    }
    let owner: Option<String> = sqlx::query_scalar("SELECT kws_ipam.release($1, $2)")
        .bind(pool.as_str())
        .bind(addr)
        .fetch_one(&a.db)
        .await
        .map_err(backend)?;
    match owner {
        Some(o) => Ok(Lease { pool: pool.clone(), addr, owner: LeaseOwner::trusted(o) }),
        None => Err(Error::NotAllocated { pool: pool.clone(), addr }),
    }
}

/// The result of `allocate_specific` from who holds `addr` and what `owner` holds.
pub(crate) fn specific_outcome(
    pool: &DnsLabel,
    addr: IpAddr,
    owner: &LeaseOwner,
    holder: String,
    held: IpAddr,
) -> Result<Lease, Error> {
    if held != addr {
        return Err(Error::OwnerHasLease { pool: pool.clone(), owner: owner.clone(), addr: held });
    }
    if holder != owner.as_str() {
        let holder = LeaseOwner::trusted(holder);
        return Err(Error::AlreadyAllocated { pool: pool.clone(), addr, holder });
    }
    Ok(Lease { pool: pool.clone(), addr, owner: owner.clone() })
}
