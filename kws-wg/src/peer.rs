//! A VPN peer as kws remembers it.

use std::net::{Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Utc};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use kws_core::{DnsLabel, IfName, OwnerId};

use crate::{PresharedKey, PublicKey, device::PeerConfig};

/// One client device on one interface.
///
/// # Contract
/// Its public key is unique across the store; its addresses are unique on its interface; its
/// name is unique per owner. The server lets it send only from its own addresses (`/32`, `/128`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The client's public key: the peer's identity.
    pub public_key: PublicKey,
    /// The server interface the peer belongs to.
    pub interface: IfName,
    /// Who owns the device.
    pub owner: OwnerId,
    /// The device's name, unique per owner.
    pub name: DnsLabel,
    /// The device's IPv4 VPN address.
    pub ipv4: Ipv4Addr,
    /// The device's IPv6 VPN address, when the VPN has an IPv6 pool.
    pub ipv6: Option<Ipv6Addr>,
    /// The preshared key, if any.
    pub preshared_key: Option<PresharedKey>,
    /// Persistent keepalive in seconds, if any.
    pub keepalive: Option<u16>,
    /// When the peer was added.
    pub created_at: DateTime<Utc>,
    /// When the peer stops being let in, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// False while the peer is disabled (kept, but off the interface).
    pub enabled: bool,
}

impl Peer {
    /// The server-side allowed IPs: the peer's own `/32` (and `/128`) and nothing else.
    pub fn allowed_ips(&self) -> Vec<IpNet> {
        let mut ips = vec![IpNet::V4(Ipv4Net::from(self.ipv4))];
        if let Some(v6) = self.ipv6 {
            ips.push(IpNet::V6(Ipv6Net::from(v6)));
        }
        ips
    }

    /// The peer as the server interface should have it: its own addresses as allowed IPs, its
    /// preshared key, no keepalive from the server side (the client keeps the NAT open), and
    /// no endpoint (the interface learns it from the first handshake).
    pub fn device_config(&self) -> PeerConfig {
        PeerConfig {
            public_key: self.public_key,
            preshared_key: self.preshared_key.clone(),
            allowed_ips: self.allowed_ips(),
            keepalive: None,
            endpoint: None,
        }
    }

    /// True when the peer has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// True when the peer belongs on the interface at `now`: enabled and not expired.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.enabled && !self.is_expired(now)
    }
}
