//! kws-wg is the memory that WireGuard lacks: it knows every peer (keys, owner, name, address)
//! in a `PeerStore` and keeps a real interface in step with it through the `WgDevice` trait.
//! `VpnService` composes both with an IP allocator to add, revoke and render client devices.
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
    DeviceRequest, NewDevice, PeerView, ReconcileReport, ReconcileTimer, Supervisor, VpnService,
    VpnSettings,
};
#[cfg(feature = "postgres")]
pub use store::PostgresPeerStore;
pub use store::{MemoryPeerStore, PeerStore};
