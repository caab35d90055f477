//! kws-ipam hands out IP addresses from IPv4 and IPv6 pools in constant time, whatever the
//! pool size or fill level, on memory, Redis, PostgreSQL, or PostgreSQL with Redis as a fast path.
//! Every VPN peer and every instance gets its address here; the `IpAllocator` trait is the contract.
//!
//! | backend | feature | how |
//! |---|---|---|
//! | [`MemoryAllocator`] | always | FIFO free queue, cursor over the usable segments, leases indexed by address and owner; every operation done when called (a ready [`IpamFuture`], nothing boxed) |
//! | `RedisAllocator` | `redis` | one atomic Lua script call per batch of concurrent operations (group commit), each operation with its own outcome; 128-bit host numbers as hex strings |
//! | `PostgresAllocator` | `postgres` | one PL/pgSQL call, one transaction and one durable commit per batch of concurrent operations (group commit; a caller returns after the commit that holds its operation); `UNIQUE (pool, address)`; `SKIP LOCKED` free queue, address and owner locks taken in one global order (no deadlock between batches, counted in `contention()`); cursor refilled 1,024 at a time in the background before a chunk runs out, one refill per process at once; a run of allocations takes its addresses in one statement per table; striped usage counters |
//! | `PgRedisAllocator` | both | PostgreSQL is the truth, Redis the fast path for the free queue; `reconcile()` rebuilds it |
//!
//! [`pool`] holds the pure arithmetic (host number <-> address, reservations, the cursor);
//! `testkit` (feature `testkit`) the conformance suite every backend runs.

mod audit;
#[cfg(all(feature = "postgres", feature = "redis"))]
pub mod baseline;
mod error;
mod future;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod group_commit;
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
pub use future::IpamFuture;
pub use memory::MemoryAllocator;
#[cfg(all(feature = "postgres", feature = "redis"))]
pub use pg_redis::PgRedisAllocator;
#[cfg(feature = "postgres")]
pub use postgres::{Contention, PostgresAllocator};
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
/// - `allocate` for an owner that holds a lease answers that lease and takes nothing else.
/// - Reuse is FIFO: released addresses come back oldest-released first, and not before the
///   pool's quarantine has passed; fresh addresses (from a persisted cursor) only when no
///   released address is ready. The order is between allocations that do not overlap in time:
///   calls in flight at once may get their addresses in either order. A network backend may
///   also pass over an address that an operation in flight at that moment names (an
///   `allocate_specific` or `release` of it; on PostgreSQL+Redis, an allocation that has taken
///   its fast-path copy and not claimed it yet, or a claim of a stale copy); it comes next once
///   that operation has committed, or, for a copy lost with a crashed process, once the fast
///   path runs dry or is reconciled.
/// - `allocate` answers `Exhausted` only if, at a moment during the call, no address of the
///   pool was free and past its quarantine. An address that a concurrent call has taken but
///   not committed is waited for, not counted as gone.
/// - Each operation is atomic: it either happens entirely or leaves no trace.
/// - Time per operation does not depend on the pool size or on how full it is.
/// - Each method returns an [`IpamFuture`]: await it. A backend may do the work before the
///   future is first polled (the memory backend does); see its contract.
pub trait IpAllocator: Send + Sync + Debug + 'static {
    /// Creates a pool. Fails with `PoolExists` when the name is taken, `InvalidPool` when the
    /// spec is inconsistent or the prefix overlaps an existing pool.
    fn create_pool<'a>(&'a self, spec: PoolSpec) -> IpamFuture<'a, ()>;

    /// Gives `owner` an address from `pool` (its existing lease, when it holds one).
    fn allocate<'a>(&'a self, pool: &'a DnsLabel, owner: &'a LeaseOwner) -> IpamFuture<'a, Lease>;

    /// Gives `owner` exactly `addr`. Fails with `AlreadyAllocated` (naming the holder) when
    /// another owner holds it, `Reserved` for a reserved address, `OutOfPool` outside the prefix.
    fn allocate_specific<'a>(
        &'a self,
        pool: &'a DnsLabel,
        addr: IpAddr,
        owner: &'a LeaseOwner,
    ) -> IpamFuture<'a, Lease>;

    /// Releases `addr` and returns the lease it ended; `NotAllocated` when nobody holds it.
    fn release<'a>(&'a self, pool: &'a DnsLabel, addr: IpAddr) -> IpamFuture<'a, Lease>;

    /// The lease on `addr`, if any.
    fn lookup<'a>(&'a self, pool: &'a DnsLabel, addr: IpAddr) -> IpamFuture<'a, Option<Lease>>;

    /// The lease `owner` holds in `pool`, if any.
    fn lookup_owner<'a>(
        &'a self,
        pool: &'a DnsLabel,
        owner: &'a LeaseOwner,
    ) -> IpamFuture<'a, Option<Lease>>;

    /// Capacity, allocated and free counts of `pool`.
    fn usage<'a>(&'a self, pool: &'a DnsLabel) -> IpamFuture<'a, Usage>;
}
