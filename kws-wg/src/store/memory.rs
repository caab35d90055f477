//! The in-memory peer store (embedded defaults and tests).

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    sync::{Mutex, MutexGuard, PoisonError},
};

use kws_core::{DnsLabel, IfName, OwnerId};

use crate::{Error, Peer, PeerStore, PublicKey};

/// Peers in this process's memory, with the same uniqueness rules as the database.
#[derive(Debug, Default)]
pub struct MemoryPeerStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    peers: BTreeMap<PublicKey, Peer>,
    addresses: HashMap<(IfName, IpAddr), PublicKey>,
    names: HashMap<(OwnerId, DnsLabel), PublicKey>,
}

fn addresses(peer: &Peer) -> impl Iterator<Item = (IfName, IpAddr)> + '_ {
    std::iter::once(IpAddr::V4(peer.ipv4))
        .chain(peer.ipv6.map(IpAddr::V6))
        .map(|a| (peer.interface.clone(), a))
}

impl MemoryPeerStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-changed: every change below
        // is checked first and then applied without a fallible step.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl PeerStore for MemoryPeerStore {
    async fn insert(&self, peer: &Peer) -> Result<(), Error> {
        let mut s = self.state();
        if s.peers.contains_key(&peer.public_key) {
            return Err(Error::DuplicatePublicKey(peer.public_key));
        }
        if let Some((interface, addr)) = addresses(peer).find(|k| s.addresses.contains_key(k)) {
            return Err(Error::DuplicateAddress { interface, addr });
        }
        let name_key = (peer.owner.clone(), peer.name.clone());
        if s.names.contains_key(&name_key) {
            return Err(Error::DuplicateName { owner: name_key.0, name: name_key.1 });
        }
        for k in addresses(peer) {
            s.addresses.insert(k, peer.public_key);
        }
        s.names.insert(name_key, peer.public_key);
        s.peers.insert(peer.public_key, peer.clone());
        Ok(())
    }

    async fn get(&self, key: &PublicKey) -> Result<Option<Peer>, Error> {
        Ok(self.state().peers.get(key).cloned())
    }

    async fn find_by_name(&self, owner: &OwnerId, name: &DnsLabel) -> Result<Option<Peer>, Error> {
        let s = self.state();
        let key = s.names.get(&(owner.clone(), name.clone()));
        Ok(key.and_then(|k| s.peers.get(k)).cloned())
    }

    async fn list(&self, interface: &IfName) -> Result<Vec<Peer>, Error> {
        Ok(self.state().peers.values().filter(|p| &p.interface == interface).cloned().collect())
    }

    async fn remove(&self, key: &PublicKey) -> Result<Peer, Error> {
        let mut s = self.state();
        let peer = s.peers.remove(key).ok_or(Error::PeerNotFound(*key))?;
        for k in addresses(&peer) {
            s.addresses.remove(&k);
        }
        s.names.remove(&(peer.owner.clone(), peer.name.clone()));
        Ok(peer)
    }

    async fn set_enabled(&self, key: &PublicKey, enabled: bool) -> Result<Peer, Error> {
        let mut s = self.state();
        let peer = s.peers.get_mut(key).ok_or(Error::PeerNotFound(*key))?;
        peer.enabled = enabled;
        Ok(peer.clone())
    }
}
