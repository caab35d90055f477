//! Pools, leases and usage.

use std::{fmt, net::IpAddr, ops::RangeInclusive, sync::Arc, time::Duration};

use ipnet::IpNet;
use kws_core::DnsLabel;

use crate::Error;

/// Which address of a pool is its gateway (never handed out).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Gateway {
    /// The first usable host (e.g. `10.0.0.1` in `10.0.0.0/24`). The default.
    #[default]
    FirstHost,
    /// This address.
    Address(IpAddr),
    /// No gateway (e.g. a VPN pool whose server address lives elsewhere).
    None,
}

/// What `create_pool` needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolSpec {
    /// The pool's name.
    pub name: DnsLabel,
    /// Its prefix, IPv4 or IPv6, any length.
    pub prefix: IpNet,
    /// The gateway address, never handed out.
    pub gateway: Gateway,
    /// More addresses never handed out, as inclusive ranges.
    pub reserved: Vec<RangeInclusive<IpAddr>>,
    /// How long a released address rests before it is handed out again.
    pub quarantine: Duration,
}

impl PoolSpec {
    /// A pool over `prefix` with the default gateway, no reservations and no quarantine.
    pub fn new(name: DnsLabel, prefix: IpNet) -> Self {
        Self {
            name,
            prefix,
            gateway: Gateway::default(),
            reserved: Vec::new(),
            quarantine: Duration::ZERO,
        }
    }
}

/// Who holds a lease: an opaque key chosen by the caller (a peer's public key, an instance id).
///
/// # Contract
/// 1 to 255 bytes, no control characters. `clone` shares the key (one reference count): the
/// memory allocator keeps the caller's key in its lease table and hands it back in each `Lease`
/// without copying it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LeaseOwner(Arc<str>);

impl LeaseOwner {
    /// The longest owner key, in bytes.
    pub const MAX_LEN: usize = 255;

    /// Checks and wraps `raw`.
    pub fn new(raw: impl Into<String>) -> Result<Self, Error> {
        let raw = raw.into();
        if raw.is_empty() || raw.len() > Self::MAX_LEN || raw.chars().any(char::is_control) {
            return Err(Error::InvalidArgument(format!(
                "lease owner {:?}: must be 1 to {} bytes without control characters",
                raw.escape_debug().to_string(),
                Self::MAX_LEN
            )));
        }
        Ok(Self(raw.into()))
    }

    /// Wraps a key that was checked before it was stored (read back from a backend).
    #[cfg(any(feature = "redis", feature = "postgres"))]
    pub(crate) fn trusted(raw: String) -> Self {
        Self(raw.into())
    }

    /// Wraps a key shared with a `LeaseOwner` that was checked before.
    pub(crate) fn shared(raw: Arc<str>) -> Self {
        Self(raw)
    }

    /// The key, shared.
    pub(crate) fn as_shared(&self) -> &Arc<str> {
        &self.0
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for LeaseOwner {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<LeaseOwner> for String {
    fn from(o: LeaseOwner) -> Self {
        o.0.as_ref().to_owned()
    }
}

impl fmt::Display for LeaseOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for LeaseOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseOwner({:?})", self.0)
    }
}

/// An address held by an owner.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lease {
    /// The pool.
    pub pool: DnsLabel,
    /// The address.
    pub addr: IpAddr,
    /// Who holds it.
    pub owner: LeaseOwner,
}

/// A pool's counts. `capacity = allocated + free`; addresses in quarantine count as free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Usable addresses (the prefix less network, broadcast, gateway and reservations).
    pub capacity: u128,
    /// Addresses leased now.
    pub allocated: u128,
    /// `capacity - allocated`.
    pub free: u128,
}
