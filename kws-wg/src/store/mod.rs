//! `PeerStore`: the memory of who every peer is. The store is the truth the interface is
//! reconciled to.

mod memory;
#[cfg(feature = "postgres")]
mod postgres;

pub use memory::MemoryPeerStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresPeerStore;

use std::fmt::Debug;

use kws_core::{DnsLabel, IfName, OwnerId};

use crate::{Error, Peer, PublicKey};

/// Stores peers, keyed by public key.
///
/// # Contract
/// - Public keys are unique across the store (`DuplicatePublicKey`); addresses (IPv4 and IPv6)
///   are unique per interface (`DuplicateAddress`); names are unique per owner
///   (`DuplicateName`). The uniqueness is enforced by the store itself, so two processes
///   sharing a backend cannot both win.
/// - Every operation is atomic: a failed `insert` leaves nothing, a failed `remove` or
///   `set_enabled` changes nothing.
/// - `list` returns the peers of one interface, ordered by public key.
/// - `remove` and `set_enabled` of an unknown key fail with `PeerNotFound`; `set_enabled` to
///   the state a peer already has succeeds and changes nothing (idempotent).
#[async_trait::async_trait]
pub trait PeerStore: Send + Sync + Debug + 'static {
    /// Stores a new peer.
    async fn insert(&self, peer: &Peer) -> Result<(), Error>;

    /// The peer with this public key, if any.
    async fn get(&self, key: &PublicKey) -> Result<Option<Peer>, Error>;

    /// The device `name` of `owner`, if any.
    async fn find_by_name(&self, owner: &OwnerId, name: &DnsLabel) -> Result<Option<Peer>, Error>;

    /// Every peer of `interface`, ordered by public key.
    async fn list(&self, interface: &IfName) -> Result<Vec<Peer>, Error>;

    /// Deletes the peer and returns what it was.
    async fn remove(&self, key: &PublicKey) -> Result<Peer, Error>;

    /// Enables or disables the peer and returns it as it is now.
    async fn set_enabled(&self, key: &PublicKey, enabled: bool) -> Result<Peer, Error>;
}
