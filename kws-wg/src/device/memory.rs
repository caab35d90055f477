//! A WireGuard interface held in memory: the embedded default, for a VpnService that has no
//! real interface (the quickstart) and for unit tests of pure logic.

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use kws_core::IfName;

use crate::{
    Error, PrivateKey, PublicKey,
    device::{DeviceState, InterfaceConfig, PeerChange, PeerConfig, PeerStatus, WgDevice},
};

/// An interface that exists only in this process: same semantics as a real one, no packets.
#[derive(Debug)]
pub struct MemoryDevice {
    interface: IfName,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    private_key: Option<PrivateKey>,
    listen_port: u16,
    peers: BTreeMap<PublicKey, PeerStatus>,
    requests: u64,
}

impl MemoryDevice {
    /// An interface with no key, no port and no peers.
    pub fn new(interface: IfName) -> Self {
        Self { interface, state: Mutex::new(State::default()) }
    }

    /// How many change requests (`configure`, `apply`, `replace_peers`) it has served: lets a
    /// test see that a no-change reconcile sent nothing.
    pub fn requests(&self) -> u64 {
        self.state().requests
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn upsert(peers: &mut BTreeMap<PublicKey, PeerStatus>, config: &PeerConfig) {
    let entry = peers.entry(config.public_key).or_insert_with(|| PeerStatus {
        config: config.clone(),
        last_handshake: None,
        rx_bytes: 0,
        tx_bytes: 0,
    });
    let endpoint = config.endpoint.or(entry.config.endpoint);
    entry.config = PeerConfig { endpoint, ..config.clone() };
}

#[async_trait::async_trait]
impl WgDevice for MemoryDevice {
    fn interface(&self) -> &IfName {
        &self.interface
    }

    async fn get(&self) -> Result<DeviceState, Error> {
        let s = self.state();
        Ok(DeviceState {
            public_key: s.private_key.as_ref().map(PrivateKey::public_key),
            listen_port: s.listen_port,
            peers: s.peers.values().cloned().collect(),
        })
    }

    async fn configure(&self, config: &InterfaceConfig) -> Result<(), Error> {
        let mut s = self.state();
        s.requests += 1;
        s.private_key = Some(config.private_key.clone());
        s.listen_port = config.listen_port;
        Ok(())
    }

    async fn apply(&self, changes: &[PeerChange]) -> Result<(), Error> {
        let mut s = self.state();
        s.requests += 1;
        for change in changes {
            match change {
                PeerChange::Upsert(config) => upsert(&mut s.peers, config),
                PeerChange::Remove(key) => {
                    s.peers.remove(key);
                }
            }
        }
        Ok(())
    }

    async fn replace_peers(&self, peers: &[PeerConfig]) -> Result<(), Error> {
        let mut s = self.state();
        s.requests += 1;
        s.peers.clear();
        for config in peers {
            upsert(&mut s.peers, config);
        }
        Ok(())
    }
}
