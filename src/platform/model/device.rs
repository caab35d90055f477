//! VPN devices: a WireGuard peer that reaches its own tenant's instances and nothing else.

use std::net::{Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::platform::store::{Kind, Resource};

/// A device's key and addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSpec {
    /// Its public key (base64).
    pub public_key: String,
    /// Its IPv4 address in the VPN, once leased.
    pub ipv4: Option<Ipv4Addr>,
    /// Its IPv6 address, when the VPN has IPv6 and once leased.
    pub ipv6: Option<Ipv6Addr>,
    /// When it stops being let in, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Resource for DeviceSpec {
    const KIND: Kind = Kind::Device;
    type Status = DeviceStatus;
}

/// What the interface knows of the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// Whether the interface has the peer.
    pub on_interface: bool,
    /// Its last handshake, `None` for never.
    pub last_handshake: Option<DateTime<Utc>>,
    /// Bytes received from it.
    pub rx_bytes: u64,
    /// Bytes sent to it.
    pub tx_bytes: u64,
}
