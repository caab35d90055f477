//! kws-wg is the memory that WireGuard lacks: it knows every peer (keys, owner, name, address)
//! in a `PeerStore` and keeps a real interface in step with it through the `WgDevice` trait.
//! `VpnService` composes both with an IP allocator to add, revoke and render client devices.
//!
//! | part | what | backends |
//! |---|---|---|
//! | [`PeerStore`] | who every peer is (unique key, address per interface, name per owner) | [`MemoryPeerStore`], `PostgresPeerStore` (feature `postgres`) |
//! | [`WgDevice`] | read and change an interface in one request | [`UapiDevice`] (wireguard-go, boringtun), [`MemoryDevice`] |
//! | [`WireguardGo`], `device::Boringtun` | start a userspace interface (addresses and link over netlink) | process (supervised), embedded (feature `boringtun`) |
//! | [`VpnService`] | add/revoke/enable/disable/expire devices, `reconcile`, client configs and QR codes | any of the above |
//!
//! The store is the truth: `reconcile` reads the interface, diffs it against the store and
//! applies only the difference, at start, on a timer and after the supervisor restarts a dead
//! interface process.
//!
//! ```
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use kws_wg::{DeviceRequest, Endpoint, PrivateKey, VpnService, VpnSettings};
//!
//! let settings = VpnSettings::new(
//!     "wg0".parse()?,
//!     PrivateKey::generate()?,
//!     Endpoint::parse("vpn.example.org:51820")?,
//!     "10.8.0.0/24".parse()?,
//! )?;
//! let vpn = VpnService::embedded(settings).await?;
//! let device = vpn.add_device(DeviceRequest::parse("alice", "laptop", None)?).await?;
//! println!("{}", device.config.render());
//! # Ok(()) }
//! ```

mod config;
pub mod device;
mod error;
mod keys;
mod peer;
mod qr;
mod service;
mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use config::{ClientConfig, Endpoint};
pub use device::{MemoryDevice, UapiDevice, WgDevice, WgDeviceExt, WireguardGo};
pub use error::Error;
pub use keys::{KEY_LEN, KeyError, PresharedKey, PrivateKey, PublicKey};
pub use peer::Peer;
pub use service::{
    DeviceRequest, NewDevice, PeerView, PurgedDevice, ReconcileReport, ReconcileTimer, Supervisor,
    VpnService, VpnSettings,
};
#[cfg(feature = "postgres")]
pub use store::PostgresPeerStore;
pub use store::{MemoryPeerStore, PeerStore};
