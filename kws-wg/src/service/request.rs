//! What `add_device` takes and gives back, and what `list` shows.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use kws_core::{DnsLabel, OwnerId};

use crate::{ClientConfig, Error, Peer, PrivateKey, PublicKey};

/// A device to add.
#[derive(Debug, Clone)]
pub struct DeviceRequest {
    /// Who owns it.
    pub owner: OwnerId,
    /// Its name, unique per owner.
    pub name: DnsLabel,
    /// The client's public key when the client made its own key pair; `None` to generate one.
    pub public_key: Option<PublicKey>,
    /// When it stops being let in, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

impl DeviceRequest {
    /// A device with a generated key that never expires.
    pub fn new(owner: OwnerId, name: DnsLabel) -> Self {
        Self { owner, name, public_key: None, expires_at: None }
    }

    /// Parses outside input: an owner, a device name and optionally a base64 public key.
    pub fn parse(owner: &str, name: &str, public_key: Option<&str>) -> Result<Self, Error> {
        let mut request = Self::new(OwnerId::parse(owner)?, DnsLabel::parse(name)?);
        request.public_key = public_key.map(PublicKey::from_base64).transpose()?;
        Ok(request)
    }

    /// Uses the client's own public key.
    pub fn public_key(mut self, key: PublicKey) -> Self {
        self.public_key = Some(key);
        self
    }

    /// Expires the device at `at`.
    pub fn expires_at(mut self, at: DateTime<Utc>) -> Self {
        self.expires_at = Some(at);
        self
    }
}

/// A device just added.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// The stored peer.
    pub peer: Peer,
    /// Its client config (with the private key when kws generated it).
    pub config: ClientConfig,
}

/// A peer with what the interface knows of it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    /// The stored peer.
    pub peer: Peer,
    /// Whether the interface has it.
    pub on_interface: bool,
    /// The last handshake, `None` for never.
    pub last_handshake: Option<SystemTime>,
    /// Bytes received from it.
    pub rx_bytes: u64,
    /// Bytes sent to it.
    pub tx_bytes: u64,
}

/// What [`VpnService::purge_device`](crate::VpnService::purge_device) found and took back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgedDevice {
    /// Whether a stored row was removed.
    pub row: bool,
    /// Whether a peer was taken off the interface.
    pub interface: bool,
    /// Address leases released.
    pub leases: usize,
}

impl PurgedDevice {
    /// Whether anything of the device existed.
    pub fn found_anything(&self) -> bool {
        self.row || self.interface || self.leases > 0
    }
}

/// The client's key pair as far as kws knows it: the private key when kws generates it.
pub(crate) fn client_key(
    request: &DeviceRequest,
) -> Result<(Option<PrivateKey>, PublicKey), Error> {
    match request.public_key {
        Some(key) => Ok((None, key)),
        None => {
            let private = PrivateKey::generate()?;
            let public = private.public_key();
            Ok((Some(private), public))
        }
    }
}
