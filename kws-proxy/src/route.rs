//! `Route` (what one public hostname serves) and `RoutePolicy` (which routes a platform allows).

use std::net::SocketAddr;

use ipnet::IpNet;
use kws_core::{Domain, Hostname};
use serde::{Deserialize, Serialize};

use crate::ProxyError;

/// What a route serves: a user's app, or an instance's browser IDE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteKind {
    /// A published app, `https://<app>.<domain>`.
    App,
    /// An instance's browser IDE, `https://<instance>.<domain>`; always carries WebSocket
    /// upgrades.
    Ide,
}

/// One public hostname and the upstream it proxies to.
///
/// # Contract
/// `host` is a `Hostname` (one `DnsLabel` under a `Domain`), so it can appear verbatim in an
/// nginx `server_name` and a file name. An IDE route always has `websocket() == true`.
/// Whether the host lies under the platform domain and the upstream inside the allowed subnets
/// is checked by `RoutePolicy::check` when the route is published. Deserializing restores the
/// IDE invariant whatever the input says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredRoute")]
pub struct Route {
    host: Hostname,
    upstream: SocketAddr,
    kind: RouteKind,
    websocket: bool,
    tls: bool,
}

impl Route {
    /// An app route with TLS on and WebSocket upgrades off.
    pub fn app(host: Hostname, upstream: SocketAddr) -> Self {
        Self { host, upstream, kind: RouteKind::App, websocket: false, tls: true }
    }

    /// An IDE route with TLS and WebSocket upgrades on.
    pub fn ide(host: Hostname, upstream: SocketAddr) -> Self {
        Self { host, upstream, kind: RouteKind::Ide, websocket: true, tls: true }
    }

    /// Sets the WebSocket flag; an IDE route keeps it on whatever `on` says.
    #[must_use]
    pub fn with_websocket(mut self, on: bool) -> Self {
        self.websocket = on || self.kind == RouteKind::Ide;
        self
    }

    /// Sets the TLS flag: on, the route is served over HTTPS with the wildcard certificate and
    /// plain HTTP redirects to it; off, it is served over plain HTTP only.
    #[must_use]
    pub fn with_tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// The public hostname.
    pub fn host(&self) -> &Hostname {
        &self.host
    }

    /// The upstream address requests are proxied to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// App or IDE.
    pub fn kind(&self) -> RouteKind {
        self.kind
    }

    /// Whether WebSocket upgrades are passed through (always true for an IDE route).
    pub fn websocket(&self) -> bool {
        self.websocket
    }

    /// Whether the route is served over HTTPS.
    pub fn tls(&self) -> bool {
        self.tls
    }
}

/// A `Route` as stored, before its invariant is restored.
#[derive(Deserialize)]
struct StoredRoute {
    host: Hostname,
    upstream: SocketAddr,
    kind: RouteKind,
    websocket: bool,
    tls: bool,
}

impl From<StoredRoute> for Route {
    fn from(r: StoredRoute) -> Self {
        let route = Route {
            host: r.host,
            upstream: r.upstream,
            kind: r.kind,
            websocket: false,
            tls: r.tls,
        };
        route.with_websocket(r.websocket)
    }
}

/// Which routes a platform accepts: hosts under its domain, upstreams inside its subnets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePolicy {
    domain: Domain,
    allowed_upstreams: Vec<IpNet>,
}

impl RoutePolicy {
    /// Routes under `domain` whose upstream lies in one of `allowed_upstreams` (for example the
    /// instance networks).
    pub fn new(domain: Domain, allowed_upstreams: impl IntoIterator<Item = IpNet>) -> Self {
        Self { domain, allowed_upstreams: allowed_upstreams.into_iter().collect() }
    }

    /// The platform domain.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The subnets upstreams must lie in.
    pub fn allowed_upstreams(&self) -> &[IpNet] {
        &self.allowed_upstreams
    }

    /// Parses `raw` as one label under the platform domain.
    pub fn host(&self, raw: &str) -> Result<Hostname, ProxyError> {
        Hostname::parse_under(raw, &self.domain).map_err(ProxyError::InvalidHost)
    }

    /// Checks that `route` may be published: its host lies under the platform domain, its
    /// upstream inside an allowed subnet, and the upstream is an address a proxy can dial (not
    /// port 0, not an unspecified, multicast or broadcast address, no IPv6 zone index).
    pub fn check(&self, route: &Route) -> Result<(), ProxyError> {
        if route.host.domain() != &self.domain {
            return Err(ProxyError::OutsideDomain {
                host: route.host.clone(),
                domain: self.domain.clone(),
            });
        }
        let ip = route.upstream.ip();
        if !self.allowed_upstreams.iter().any(|net| net.contains(&ip)) {
            return Err(ProxyError::UpstreamNotAllowed {
                upstream: route.upstream,
                allowed: self.allowed_upstreams.clone(),
            });
        }
        match undialable(route.upstream) {
            Some(why) => Err(ProxyError::InvalidUpstream { upstream: route.upstream, why }),
            None => Ok(()),
        }
    }
}

/// Why no proxy can dial `upstream`, if so.
fn undialable(upstream: SocketAddr) -> Option<&'static str> {
    let ip = upstream.ip();
    if upstream.port() == 0 {
        Some("port 0")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if ip == std::net::Ipv4Addr::BROADCAST {
        Some("the broadcast address")
    } else if matches!(upstream, SocketAddr::V6(v6) if v6.scope_id() != 0) {
        Some("an IPv6 zone index, which a route cannot carry")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ide_routes_keep_websocket_on() {
        let host = Hostname::parse("i.example.test").expect("host");
        let addr = "10.0.0.1:1".parse().expect("addr");
        assert!(Route::ide(host.clone(), addr).with_websocket(false).websocket());
        assert!(!Route::app(host.clone(), addr).websocket());
        assert!(Route::app(host, addr).with_websocket(true).websocket());
        let json = r#"{"host":"i.example.test","upstream":"10.0.0.1:1","kind":"ide","websocket":false,"tls":true}"#;
        let read: Route = serde_json::from_str(json).expect("route");
        assert!(read.websocket());
    }

    #[test]
    fn policy_checks_domain_and_subnets() {
        let policy = RoutePolicy::new(
            "example.test".parse().expect("domain"),
            ["10.0.0.0/8".parse().expect("net"), "fd00::/8".parse().expect("net")],
        );
        let host = policy.host("a.example.test").expect("host");
        assert!(policy.check(&Route::app(host.clone(), "10.9.9.9:80".parse().expect("a"))).is_ok());
        assert!(
            policy.check(&Route::app(host.clone(), "[fd00::1]:80".parse().expect("a"))).is_ok()
        );
        let err = policy.check(&Route::app(host, "11.0.0.1:80".parse().expect("a")));
        assert!(matches!(err, Err(ProxyError::UpstreamNotAllowed { .. })));
        let wide = RoutePolicy::new(
            "example.test".parse().expect("domain"),
            ["0.0.0.0/0".parse().expect("net"), "::/0".parse().expect("net")],
        );
        let v6 = std::net::SocketAddrV6::new("fe80::1".parse().expect("ip"), 80, 0, 2);
        for bad in [
            "10.0.0.1:0".parse().expect("a"),
            "0.0.0.0:80".parse().expect("a"),
            "[::]:80".parse().expect("a"),
            "224.0.0.1:80".parse().expect("a"),
            "[ff02::1]:80".parse().expect("a"),
            "255.255.255.255:80".parse().expect("a"),
            SocketAddr::V6(v6),
        ] {
            let route = Route::app(policy.host("a.example.test").expect("host"), bad);
            let err = wide.check(&route);
            assert!(matches!(err, Err(ProxyError::InvalidUpstream { .. })), "{bad}: {err:?}");
        }
        let outside = Hostname::parse("a.example.org").expect("host");
        let err = policy.check(&Route::app(outside, "10.0.0.1:80".parse().expect("a")));
        assert!(matches!(err, Err(ProxyError::OutsideDomain { .. })));
    }
}
