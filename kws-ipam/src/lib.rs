//! kws-ipam hands out IP addresses from IPv4 and IPv6 pools in constant time, whatever the
//! pool size or fill level, on memory, Redis, PostgreSQL, or PostgreSQL with Redis as a fast path.
//! Every VPN peer and every instance gets its address here; the `IpAllocator` trait is the contract.
//!
//! | backend | feature | how |
//! |---|---|---|
//! | [`MemoryAllocator`] | always | FIFO free queue, cursor over the usable segments, leases indexed by address and owner |
//! | `RedisAllocator` | `redis` | one Lua script per operation; 128-bit host numbers as hex strings |
//! | `PostgresAllocator` | `postgres` | one PL/pgSQL call per operation; `UNIQUE (pool, address)`; `SKIP LOCKED` free queue; cursor refilled 64 at a time |
//! | `PgRedisAllocator` | both | PostgreSQL is the truth, Redis the fast path for the free queue; `reconcile()` rebuilds it |
//!
//! [`pool`] holds the pure arithmetic (host number <-> address, reservations, the cursor);
//! `testkit` (feature `testkit`) the conformance suite every backend runs.

mod audit;
#[cfg(all(feature = "postgres", feature = "redis"))]
pub mod baseline;
mod error;
mod memory;
#[cfg(all(feature = "postgres", feature = "redis"))]
mod pg_redis;
pub mod pool;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "testkit")]
pub mod testkit;
mod types;

pub use audit::Audit;
pub use error::Error;
pub use memory::MemoryAllocator;
#[cfg(all(feature = "postgres", feature = "redis"))]
pub use pg_redis::PgRedisAllocator;
#[cfg(feature = "postgres")]
pub use postgres::PostgresAllocator;
#[cfg(feature = "redis")]
pub use redis::RedisAllocator;
pub use types::{Gateway, Lease, LeaseOwner, PoolSpec, Usage};

use std::{fmt::Debug, net::IpAddr};

use kws_core::DnsLabel;

/// Allocates addresses from named pools.
///
/// # Contract
/// - A pool is any IPv4 or IPv6 prefix. The network address, the IPv4 broadcast address, the
///   gateway and configured reservations are never handed out; /31 and /32 (and /127 and /128)
///   follow RFC 3021: every address is usable.
/// - `allocate` is idempotent per owner: while an owner holds a lease in a pool, a retried call
///   returns that same lease.
/// - An address is held by at most one lease at a time, across every process sharing a backend.
/// - Reuse is FIFO: released addresses come back oldest-released first, and not before the
///   pool's quarantine has passed; fresh addresses come from a persisted cursor.
/// - Each operation is atomic: it either happens entirely or leaves no trace.
/// - Time per operation does not depend on the pool size or on how full it is.
#[async_trait::async_trait]
pub trait IpAllocator: Send + Sync + Debug + 'static {
    /// Creates a pool. Fails with `PoolExists` when the name is taken, `InvalidPool` when the
    /// spec is inconsistent or the prefix overlaps an existing pool.
    async fn create_pool(&self, spec: PoolSpec) -> Result<(), Error>;

    /// Gives `owner` an address from `pool` (its existing lease, when it holds one).
    async fn allocate(&self, pool: &DnsLabel, owner: &LeaseOwner) -> Result<Lease, Error>;

    /// Gives `owner` exactly `addr`. Fails with `AlreadyAllocated` (naming the holder) when
    /// another owner holds it, `Reserved` for a reserved address, `OutOfPool` outside the prefix.
    async fn allocate_specific(
        &self,
        pool: &DnsLabel,
        addr: IpAddr,
        owner: &LeaseOwner,
    ) -> Result<Lease, Error>;

    /// Releases `addr` and returns the lease it ended; `NotAllocated` when nobody holds it.
    async fn release(&self, pool: &DnsLabel, addr: IpAddr) -> Result<Lease, Error>;

    /// The lease on `addr`, if any.
    async fn lookup(&self, pool: &DnsLabel, addr: IpAddr) -> Result<Option<Lease>, Error>;

    /// The lease `owner` holds in `pool`, if any.
    async fn lookup_owner(
        &self,
        pool: &DnsLabel,
        owner: &LeaseOwner,
    ) -> Result<Option<Lease>, Error>;

    /// Capacity, allocated and free counts of `pool`.
    async fn usage(&self, pool: &DnsLabel) -> Result<Usage, Error>;
}
