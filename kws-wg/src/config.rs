//! Client configs: the wg-quick INI a device imports, and the server endpoint it names.

use std::{
    fmt::{self, Write},
    net::IpAddr,
    str::FromStr,
};

use ipnet::IpNet;
use kws_core::Domain;

use crate::{Error, PresharedKey, PrivateKey, PublicKey};

/// Where clients reach the server: a host name or an IP address, and a UDP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    host: EndpointHost,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum EndpointHost {
    Ip(IpAddr),
    Name(Domain),
}

impl Endpoint {
    /// `host:port` where host is an IPv4 address, a bracketed IPv6 address or a DNS name.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::InvalidArgument(format!("endpoint {:?}: {why}", raw.escape_debug().to_string()))
        };
        let (host, port) = raw.rsplit_once(':').ok_or_else(|| bad("expected host:port"))?;
        let port: u16 = port.parse().map_err(|_| bad("the port is not 1 to 65535"))?;
        if port == 0 {
            return Err(bad("the port is not 1 to 65535"));
        }
        let host = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            EndpointHost::Ip(IpAddr::V6(v6.parse().map_err(|_| bad("not an IPv6 address"))?))
        } else if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
            EndpointHost::Ip(IpAddr::V4(ip))
        } else {
            EndpointHost::Name(Domain::parse(host)?)
        };
        Ok(Self { host, port })
    }

    /// The UDP port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl FromStr for Endpoint {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            EndpointHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            EndpointHost::Ip(IpAddr::V4(ip)) => write!(f, "{ip}:{}", self.port),
            EndpointHost::Name(name) => write!(f, "{}:{}", name.as_str(), self.port),
        }
    }
}

/// A client's wg-quick configuration.
///
/// # Contract
/// `render` gives a file that `wg-quick up` and the WireGuard apps import as it is: every value
/// in it is typed (keys, prefixes, addresses, endpoint), so no user string reaches the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The client's private key; `None` when the client supplied its own public key (the file
    /// then says where the key goes).
    pub private_key: Option<PrivateKey>,
    /// The client's VPN addresses (`/32`, `/128`).
    pub addresses: Vec<IpNet>,
    /// DNS servers to use while connected.
    pub dns: Vec<IpAddr>,
    /// The server's public key.
    pub server_public_key: PublicKey,
    /// The preshared key, if any.
    pub preshared_key: Option<PresharedKey>,
    /// The server's endpoint.
    pub endpoint: Endpoint,
    /// What the client routes into the tunnel (the VPN and instance subnets).
    pub allowed_ips: Vec<IpNet>,
    /// Persistent keepalive in seconds, if any.
    pub keepalive: Option<u16>,
}

fn joined<T: fmt::Display>(items: &[T]) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

impl ClientConfig {
    /// The wg-quick INI text. It holds the private key: treat it as a secret.
    pub fn render(&self) -> String {
        let mut out = String::from("[Interface]\n");
        match &self.private_key {
            Some(key) => {
                let _ = writeln!(out, "PrivateKey = {}", key.to_base64());
            }
            None => out.push_str("# PrivateKey = <the private key of the public key you gave>\n"),
        }
        let _ = writeln!(out, "Address = {}", joined(&self.addresses));
        if !self.dns.is_empty() {
            let _ = writeln!(out, "DNS = {}", joined(&self.dns));
        }
        out.push_str("\n[Peer]\n");
        let _ = writeln!(out, "PublicKey = {}", self.server_public_key);
        if let Some(psk) = &self.preshared_key {
            let _ = writeln!(out, "PresharedKey = {}", psk.to_base64());
        }
        let _ = writeln!(out, "Endpoint = {}", self.endpoint);
        let _ = writeln!(out, "AllowedIPs = {}", joined(&self.allowed_ips));
        if let Some(secs) = self.keepalive {
            let _ = writeln!(out, "PersistentKeepalive = {secs}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_print() {
        for ok in ["vpn.example.org:51820", "192.0.2.1:1", "[2001:db8::1]:65535", "vpn:5"] {
            assert_eq!(Endpoint::parse(ok).expect(ok).to_string(), ok);
        }
        for bad in [
            "",
            "vpn",
            "vpn:",
            "vpn:0",
            "vpn:65536",
            "[::1:5",
            "a b:1",
            "a;b:1",
            "x\n:1",
            "$(reboot):1",
            "..:1",
            "[zz]:1",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn renders_wg_quick_ini() {
        let client = PrivateKey::generate().expect("rng");
        let server = PrivateKey::generate().expect("rng").public_key();
        let cfg = ClientConfig {
            private_key: Some(client.clone()),
            addresses: vec!["10.8.0.2/32".parse().expect("net")],
            dns: vec!["10.8.0.1".parse().expect("ip")],
            server_public_key: server,
            preshared_key: None,
            endpoint: Endpoint::parse("vpn.example.org:51820").expect("endpoint"),
            allowed_ips: vec![
                "10.8.0.0/24".parse().expect("net"),
                "10.9.0.0/16".parse().expect("net"),
            ],
            keepalive: Some(25),
        };
        let text = cfg.render();
        assert_eq!(
            text,
            format!(
                "[Interface]\nPrivateKey = {}\nAddress = 10.8.0.2/32\nDNS = 10.8.0.1\n\n[Peer]\n\
                 PublicKey = {server}\nEndpoint = vpn.example.org:51820\n\
                 AllowedIPs = 10.8.0.0/24, 10.9.0.0/16\nPersistentKeepalive = 25\n",
                client.to_base64()
            )
        );
    }
}
