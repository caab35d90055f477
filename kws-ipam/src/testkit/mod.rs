//! The conformance suite every backend runs (feature `testkit`), once directly and once through
//! `Box<dyn IpAllocator>`. Each check panics with a message naming what broke.
//!
//! The flaws of the design this crate comes from, and the checks that catch each:
//! 1. two allocators reading the same maximum hand out one address: [`concurrent_allocators_never_share`];
//! 2. a crash between the Redis and the database halves leaks the address: the PgRedis tests
//!    `flaw2_*` (the other backends have one atomic step per operation);
//! 3. a release racing an allocation requeues an address in use: [`release_racing_allocation`];
//! 4. LIFO reuse hands a just-revoked address to the next peer: [`reuse_is_fifo`],
//!    [`quarantine_holds_back_released`];
//! 5. Redis losing its data leaks addresses or causes duplicates: the PgRedis tests `flaw5_*`;
//! 6. a static assignment near the top strands everything below it:
//!    [`allocate_specific_keeps_the_cursor`];
//! 7. only three prefix lengths and one base work: [`ipv6_pools`], [`point_to_point_pools`],
//!    [`reservations_are_never_handed_out`] and the `pool` unit tests.
//!
//! The checks use fixed, disjoint prefixes under `10.200.0.0/16` and `fd00:c0f::/32`, so
//! [`run_all`] needs an allocator with no overlapping pools: a fresh one.

mod checks;
mod races;

pub use checks::*;
pub use races::*;

use std::net::IpAddr;

use ipnet::IpNet;
use kws_core::DnsLabel;

use crate::{Error, IpAllocator, LeaseOwner, PoolSpec};

/// Runs every check of the suite on `alloc`.
pub async fn run_all<A: IpAllocator + ?Sized>(alloc: &A) {
    slash29_yields_five_then_exhausted(alloc).await;
    allocate_is_idempotent(alloc).await;
    release_checks_the_holder(alloc).await;
    reuse_is_fifo(alloc).await;
    quarantine_holds_back_released(alloc).await;
    ipv6_pools(alloc).await;
    point_to_point_pools(alloc).await;
    allocate_specific_keeps_the_cursor(alloc).await;
    pools_are_validated(alloc).await;
    reservations_are_never_handed_out(alloc).await;
    hostile_owners_round_trip(alloc).await;
}

/// A pool name.
pub fn label(s: &str) -> DnsLabel {
    DnsLabel::parse(s).unwrap_or_else(|e| panic!("test pool name {s}: {e}"))
}

/// An owner key.
pub fn owner(s: &str) -> LeaseOwner {
    LeaseOwner::new(s).unwrap_or_else(|e| panic!("test owner {s}: {e}"))
}

/// An address.
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("test address {s}: {e}"))
}

/// A pool spec with defaults.
pub fn spec(name: &str, prefix: &str) -> PoolSpec {
    let prefix: IpNet = prefix.parse().unwrap_or_else(|e| panic!("test prefix {prefix}: {e}"));
    PoolSpec::new(label(name), prefix)
}

/// Creates a pool or panics.
pub async fn create<A: IpAllocator + ?Sized>(alloc: &A, spec: PoolSpec) -> DnsLabel {
    let name = spec.name.clone();
    if let Err(e) = alloc.create_pool(spec).await {
        panic!("create_pool {name}: {e}");
    }
    name
}

/// Allocates or panics.
pub async fn must_allocate<A: IpAllocator + ?Sized>(
    alloc: &A,
    pool: &DnsLabel,
    who: &str,
) -> IpAddr {
    match alloc.allocate(pool, &owner(who)).await {
        Ok(lease) => {
            assert_eq!(lease.owner.as_str(), who, "lease names its owner");
            assert_eq!(&lease.pool, pool, "lease names its pool");
            lease.addr
        }
        Err(e) => panic!("allocate in {pool} for {who}: {e}"),
    }
}

/// Releases or panics.
pub async fn must_release<A: IpAllocator + ?Sized>(alloc: &A, pool: &DnsLabel, addr: IpAddr) {
    if let Err(e) = alloc.release(pool, addr).await {
        panic!("release {addr} in {pool}: {e}");
    }
}

/// Panics unless `r` failed with an error `want` accepts.
pub fn expect_err<T: std::fmt::Debug>(
    r: Result<T, Error>,
    what: &str,
    want: impl Fn(&Error) -> bool,
) {
    match r {
        Err(e) if want(&e) => {}
        other => panic!("{what}: unexpected {other:?}"),
    }
}
