//! The crate's error.

use std::net::IpAddr;

use kws_core::{DnsLabel, IfName, OwnerId, ParseError};

use crate::{KeyError, PublicKey};

/// Why a kws-wg operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A malformed key.
    #[error("malformed key: {0}")]
    Key(#[from] KeyError),
    /// A name, owner or interface name that is not valid.
    #[error(transparent)]
    Name(#[from] ParseError),
    /// Another peer has this public key.
    #[error("a peer with public key {0} already exists")]
    DuplicatePublicKey(PublicKey),
    /// Another peer on the interface has this address.
    #[error("address {addr} is already used on interface {interface}")]
    DuplicateAddress {
        /// The interface.
        interface: IfName,
        /// The address.
        addr: IpAddr,
    },
    /// The owner already has a device of this name.
    #[error("owner {owner} already has a device named {name}")]
    DuplicateName {
        /// The owner.
        owner: OwnerId,
        /// The name.
        name: DnsLabel,
    },
    /// No peer with this public key.
    #[error("no peer with public key {0}")]
    PeerNotFound(PublicKey),
    /// The VPN's address pool has no free address.
    #[error("VPN address pool {pool} is exhausted")]
    PoolExhausted {
        /// The pool.
        pool: DnsLabel,
    },
    /// The IP allocator failed.
    #[error("address allocation: {0}")]
    Allocator(#[source] kws_ipam::Error),
    /// The WireGuard device refused a request (UAPI `errno`, negative in wireguard-go).
    #[error("device {interface} answered errno={errno} to a {op} request")]
    DeviceErrno {
        /// The interface.
        interface: IfName,
        /// `get` or `set`.
        op: &'static str,
        /// The errno as sent (signed).
        errno: i64,
    },
    /// The device's answer is not valid UAPI.
    #[error("device {interface}: malformed UAPI answer: {detail}")]
    DeviceProtocol {
        /// The interface.
        interface: IfName,
        /// What was wrong.
        detail: String,
    },
    /// The device could not be reached, started or configured.
    #[error("device {interface}: {context}: {source}")]
    DeviceIo {
        /// The interface.
        interface: IfName,
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A setting or argument that is not valid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The peer store's backend failed.
    #[error("{backend} peer store: {source}")]
    Store {
        /// Which backend.
        backend: &'static str,
        /// What it said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl From<kws_ipam::Error> for Error {
    fn from(e: kws_ipam::Error) -> Self {
        match e {
            kws_ipam::Error::Exhausted { pool } => Error::PoolExhausted { pool },
            other => Error::Allocator(other),
        }
    }
}
