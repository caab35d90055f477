//! What a `VpnService` is configured with.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use kws_core::{DnsLabel, IfName};
use kws_ipam::{Gateway, PoolSpec};

use crate::{Endpoint, Error, PrivateKey};

/// The server side of one VPN interface.
#[derive(Debug, Clone)]
pub struct VpnSettings {
    /// The server interface.
    pub interface: IfName,
    /// The server's private key.
    pub server_key: PrivateKey,
    /// The UDP port the interface listens on.
    pub listen_port: u16,
    /// Where clients reach the server.
    pub endpoint: Endpoint,
    /// The IPv4 VPN subnet; the server holds its first host, clients get the others.
    pub subnet_v4: Ipv4Net,
    /// The IPv6 VPN subnet, if the VPN has IPv6; same rule.
    pub subnet_v6: Option<Ipv6Net>,
    /// The allocator pool of IPv4 client addresses.
    pub pool_v4: DnsLabel,
    /// The allocator pool of IPv6 client addresses (used when `subnet_v6` is set).
    pub pool_v6: DnsLabel,
    /// DNS servers written into client configs.
    pub dns: Vec<IpAddr>,
    /// More subnets clients route into the tunnel (the instance subnets), beside the VPN's own.
    pub routed_subnets: Vec<IpNet>,
    /// Persistent keepalive written into client configs.
    pub keepalive: Option<u16>,
    /// Whether each new peer gets a preshared key.
    pub preshared_keys: bool,
}

impl VpnSettings {
    /// Settings with one IPv4 subnet, pools `vpn4`/`vpn6`, no DNS, no routed subnets, a
    /// keepalive of 25 s and preshared keys on.
    pub fn new(
        interface: IfName,
        server_key: PrivateKey,
        endpoint: Endpoint,
        subnet_v4: Ipv4Net,
    ) -> Result<Self, Error> {
        if subnet_v4.prefix_len() > 30 {
            return Err(Error::InvalidArgument(format!(
                "VPN subnet {subnet_v4} is too small: a server and clients need at most a /30"
            )));
        }
        Ok(Self {
            interface,
            server_key,
            listen_port: endpoint.port(),
            endpoint,
            subnet_v4: subnet_v4.trunc(),
            subnet_v6: None,
            pool_v4: DnsLabel::parse("vpn4")?,
            pool_v6: DnsLabel::parse("vpn6")?,
            dns: Vec::new(),
            routed_subnets: Vec::new(),
            keepalive: Some(25),
            preshared_keys: true,
        })
    }

    /// The server's IPv4 address on the interface, with the subnet's prefix length.
    pub fn server_address_v4(&self) -> IpNet {
        let first = u32::from(self.subnet_v4.network()).saturating_add(1);
        IpNet::V4(Ipv4Net::new_assert(first.into(), self.subnet_v4.prefix_len()))
    }

    /// The server's IPv6 address on the interface, if the VPN has IPv6.
    pub fn server_address_v6(&self) -> Option<IpNet> {
        self.subnet_v6.map(|net| {
            let first = u128::from(net.network()).saturating_add(1);
            IpNet::V6(Ipv6Net::new_assert(first.into(), net.prefix_len()))
        })
    }

    /// The server's addresses (for `WireguardGo::address`).
    pub fn server_addresses(&self) -> Vec<IpNet> {
        std::iter::once(self.server_address_v4()).chain(self.server_address_v6()).collect()
    }

    /// What clients route into the tunnel: the VPN subnets and the routed subnets.
    pub fn client_allowed_ips(&self) -> Vec<IpNet> {
        let mut ips = vec![IpNet::V4(self.subnet_v4)];
        ips.extend(self.subnet_v6.map(|n| IpNet::V6(n.trunc())));
        ips.extend(self.routed_subnets.iter().map(IpNet::trunc));
        ips
    }

    /// The allocator pools this VPN needs (the server address is their gateway).
    pub fn pool_specs(&self) -> Vec<PoolSpec> {
        let mut v4 = PoolSpec::new(self.pool_v4.clone(), IpNet::V4(self.subnet_v4));
        v4.gateway = Gateway::Address(self.server_address_v4().addr());
        let mut specs = vec![v4];
        if let (Some(net), Some(server)) = (self.subnet_v6, self.server_address_v6()) {
            let mut v6 = PoolSpec::new(self.pool_v6.clone(), IpNet::V6(net.trunc()));
            v6.gateway = Gateway::Address(server.addr());
            specs.push(v6);
        }
        specs
    }
}
