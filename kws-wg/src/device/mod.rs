//! `WgDevice`: read and change a WireGuard interface. Backends: `UapiDevice` (the
//! cross-platform UAPI socket of wireguard-go and boringtun) and `MemoryDevice` (embedded
//! defaults, no interface at all). `WireguardGo` starts a userspace interface to talk to.

#[cfg(feature = "boringtun")]
mod boringtun;
mod link;
mod memory;
mod uapi;
mod wire;
mod wireguard_go;

#[cfg(feature = "boringtun")]
pub use boringtun::{Boringtun, EmbeddedInterface};
pub use memory::MemoryDevice;
pub use uapi::{SOCKET_DIR, UapiDevice};
pub use wireguard_go::{RunningInterface, WireguardGo};

use std::{fmt::Debug, net::SocketAddr, time::SystemTime};

use ipnet::IpNet;
use kws_core::IfName;

use crate::{Error, PresharedKey, PrivateKey, PublicKey};

/// The interface's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// The interface's private key.
    pub private_key: PrivateKey,
    /// The UDP port it listens on.
    pub listen_port: u16,
}

/// One peer as the interface should have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's public key.
    pub public_key: PublicKey,
    /// Its preshared key, if any.
    pub preshared_key: Option<PresharedKey>,
    /// The source addresses accepted from it (and routed to it).
    pub allowed_ips: Vec<IpNet>,
    /// Persistent keepalive in seconds, if any.
    pub keepalive: Option<u16>,
    /// Where to send to it before it has sent anything, if known.
    pub endpoint: Option<SocketAddr>,
}

/// One peer as the interface has it, with live figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's configuration on the interface (`endpoint` is the last one seen).
    pub config: PeerConfig,
    /// The last completed handshake; `None` when there was none.
    pub last_handshake: Option<SystemTime>,
    /// Bytes received from the peer.
    pub rx_bytes: u64,
    /// Bytes sent to the peer.
    pub tx_bytes: u64,
}

/// What `get` reads from an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    /// The public key of the interface's private key; `None` when it has none yet. (`get`
    /// never hands out the private key.)
    pub public_key: Option<PublicKey>,
    /// The UDP port it listens on (0 before one is set).
    pub listen_port: u16,
    /// Its peers, in no particular order.
    pub peers: Vec<PeerStatus>,
}

/// One change of a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerChange {
    /// Adds the peer, or sets every field of an existing one (its allowed IPs are replaced,
    /// its preshared key and keepalive are set or cleared; its endpoint is set when given).
    Upsert(PeerConfig),
    /// Removes the peer (nothing happens when it is not there).
    Remove(PublicKey),
}

/// A WireGuard interface that can be read and changed.
///
/// # Contract
/// - `get` returns the interface's settings and every peer with its last handshake (`None` for
///   never) and byte counters.
/// - `configure` sets the interface's own key and port and leaves its peers alone.
/// - `apply` sends all the changes as one request: the other peers are untouched and their
///   sessions keep running. Applying the same changes twice gives the same interface.
/// - `replace_peers` removes every peer and sets exactly the given ones. It breaks every
///   session; it exists for recovery, never for routine changes.
#[async_trait::async_trait]
pub trait WgDevice: Send + Sync + Debug + 'static {
    /// The interface's name.
    fn interface(&self) -> &IfName;

    /// Reads the interface.
    async fn get(&self) -> Result<DeviceState, Error>;

    /// Sets the interface's private key and listen port.
    async fn configure(&self, config: &InterfaceConfig) -> Result<(), Error>;

    /// Applies peer changes in one request.
    async fn apply(&self, changes: &[PeerChange]) -> Result<(), Error>;

    /// Replaces every peer (recovery only).
    async fn replace_peers(&self, peers: &[PeerConfig]) -> Result<(), Error>;
}

/// Conveniences over any `WgDevice`.
#[async_trait::async_trait]
pub trait WgDeviceExt: WgDevice {
    /// Adds (or updates) one peer.
    async fn add_peer(&self, peer: PeerConfig) -> Result<(), Error> {
        self.apply(&[PeerChange::Upsert(peer)]).await
    }

    /// Removes one peer (no error when it is not there).
    async fn remove_peer(&self, key: PublicKey) -> Result<(), Error> {
        self.apply(&[PeerChange::Remove(key)]).await
    }
}

impl<T: WgDevice + ?Sized> WgDeviceExt for T {}
