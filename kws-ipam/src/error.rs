//! The crate's error.

use std::net::IpAddr;

use kws_core::DnsLabel;

use crate::LeaseOwner;

/// Why an allocator operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Every usable address of the pool is leased (or in quarantine).
    #[error("pool {pool} is exhausted")]
    Exhausted {
        /// The pool.
        pool: DnsLabel,
    },
    /// `release` of an address nobody holds.
    #[error("{addr} is not allocated in pool {pool}")]
    NotAllocated {
        /// The pool.
        pool: DnsLabel,
        /// The address.
        addr: IpAddr,
    },
    /// The address is not inside the pool's prefix.
    #[error("{addr} is outside pool {pool}")]
    OutOfPool {
        /// The pool.
        pool: DnsLabel,
        /// The address.
        addr: IpAddr,
    },
    /// The address is the network, broadcast or gateway address, or a configured reservation.
    #[error("{addr} is reserved in pool {pool}")]
    Reserved {
        /// The pool.
        pool: DnsLabel,
        /// The address.
        addr: IpAddr,
    },
    /// Another owner holds the address.
    #[error("{addr} in pool {pool} is already allocated to {holder}")]
    AlreadyAllocated {
        /// The pool.
        pool: DnsLabel,
        /// The address.
        addr: IpAddr,
        /// Who holds it.
        holder: LeaseOwner,
    },
    /// `allocate_specific` for an owner that already holds another address of the pool (an
    /// owner holds at most one lease per pool).
    #[error("{owner} already holds {addr} in pool {pool}")]
    OwnerHasLease {
        /// The pool.
        pool: DnsLabel,
        /// The owner.
        owner: LeaseOwner,
        /// The address it holds.
        addr: IpAddr,
    },
    /// `create_pool` with a name that exists.
    #[error("pool {0} already exists")]
    PoolExists(DnsLabel),
    /// No pool of that name.
    #[error("pool {0} not found")]
    PoolNotFound(DnsLabel),
    /// The pool spec is inconsistent or overlaps an existing pool.
    #[error("invalid pool: {0}")]
    InvalidPool(String),
    /// A bad argument that is not about a pool (e.g. an owner key).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The backend (Redis, PostgreSQL) failed.
    #[error("{backend} backend: {source}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// What it said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
