//! The test topology, all in namespaces the test makes: an outside client, the host (router),
//! a VM behind the /29 bridge, and two VPN peers behind a stand-in for the WireGuard interface.
//!
//! ```text
//! client cl0 198.51.100.2 ── up0 198.51.100.1  router  vmbr1 192.168.69.1/29 ── vm0 .2 .3  vm
//!                                               wg0 10.7.0.1/30
//!                                                │
//!                                   tun wgside 10.7.0.2 ── peer A 10.8.0.2, peer B 10.8.0.3
//! ```
//!
//! The "tun" namespace plays the WireGuard device's part: every packet from a peer, including
//! one addressed to the other peer, is sent to the router through `wg0` (policy routing), and
//! the router's replies to `10.8.0.0/24` come back through `wg0`. Peer-to-peer traffic thus
//! enters and leaves the router on `wg0`, exactly as on a WireGuard hub.

#![allow(dead_code, unreachable_pub)]

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    time::{Duration, Instant},
};

use kws_hostnet::{HostNetSpec, HostNetState, LinuxHostNetwork};
use kws_testenv::Netns;

pub const CLIENT: &str = "198.51.100.2";
pub const UPLINK: &str = "198.51.100.1";
pub const VM: &str = "192.168.69.2";
pub const VM_B: &str = "192.168.69.3";
pub const PEER_A: &str = "10.8.0.2";
pub const PEER_B: &str = "10.8.0.3";

pub struct Topology {
    pub client: Netns,
    pub router: Netns,
    pub vm: Netns,
}

impl Topology {
    /// Client, router and VM; the VM's link joins `vmbr1` once kws created it ([`Self::attach_vm`]).
    pub fn new() -> Option<Self> {
        let (client, router, vm) = (Netns::new()?, Netns::new()?, Netns::new()?);
        client.veth_to(&router, ("cl0", "198.51.100.2/24"), ("up0", "198.51.100.1/24"));
        router.run([
            "ip",
            "link",
            "add",
            "vmport",
            "type",
            "veth",
            "peer",
            "name",
            "vm0",
            "netns",
            vm.name(),
        ]);
        router.run(["ip", "link", "set", "vmport", "up"]);
        vm.run(["ip", "addr", "add", "192.168.69.2/29", "dev", "vm0"]);
        vm.run(["ip", "addr", "add", "192.168.69.3/29", "dev", "vm0"]);
        vm.run(["ip", "link", "set", "vm0", "up"]);
        vm.run(["ip", "route", "add", "default", "via", "192.168.69.1"]);
        Some(Self { client, router, vm })
    }

    /// Puts the VM's router-side link into `vmbr1` (the bridge kws made).
    pub fn attach_vm(&self) {
        self.router.run(["ip", "link", "set", "vmport", "master", "vmbr1"]);
    }

    /// The backend, acting on the router namespace.
    pub fn backend(&self) -> LinuxHostNetwork {
        self.router.enter(LinuxHostNetwork::new).expect("linux backend in the router namespace")
    }

    /// `nft list ruleset` in the router.
    pub fn ruleset(&self) -> String {
        self.router.run(["nft", "list", "ruleset"])
    }
}

/// Two VPN peers behind `wg0` of the router (see the module docs).
pub struct Peers {
    pub tun: Netns,
    pub a: Netns,
    pub b: Netns,
}

impl Peers {
    pub fn new(router: &Netns) -> Option<Self> {
        let (tun, a, b) = (Netns::new()?, Netns::new()?, Netns::new()?);
        router.veth_to(&tun, ("wg0", "10.7.0.1/30"), ("wgside", "10.7.0.2/30"));
        router.run(["ip", "route", "add", "10.8.0.0/24", "via", "10.7.0.2", "dev", "wg0"]);
        tun.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        tun.run(["ip", "route", "add", "default", "via", "10.7.0.1", "table", "100"]);
        for (peer, here, there, addr) in [(&a, "ta", "a0", PEER_A), (&b, "tb", "b0", PEER_B)] {
            tun.run([
                "ip",
                "link",
                "add",
                here,
                "type",
                "veth",
                "peer",
                "name",
                there,
                "netns",
                peer.name(),
            ]);
            tun.run(["ip", "addr", "add", "10.6.0.1/32", "dev", here]);
            tun.run(["ip", "link", "set", here, "up"]);
            tun.run(["ip", "route", "add", &format!("{addr}/32"), "dev", here]);
            // Everything a peer sends goes to the hub, as WireGuard's routing would do.
            tun.run(["ip", "rule", "add", "iif", here, "lookup", "100"]);
            peer.run(["ip", "addr", "add", &format!("{addr}/32"), "dev", there]);
            peer.run(["ip", "link", "set", there, "up"]);
            peer.run(["ip", "route", "add", "10.6.0.1", "dev", there, "scope", "link"]);
            peer.run(["ip", "route", "add", "default", "via", "10.6.0.1", "dev", there]);
        }
        Some(Self { tun, a, b })
    }
}

/// The router state of the tests: the hand setup on the test uplink `up0`, plus options.
pub fn router_spec(forwarding: bool) -> HostNetSpec {
    let text = format!(
        r#"
        forwarding = {{ ipv4 = {forwarding}, ipv6 = false }}
        [[bridges]]
        name = "vmbr1"
        addresses = ["192.168.69.1/29"]
        [[masquerade]]
        source = "192.168.69.0/29"
        out_interface = "up0"
        [[port_forwards]]
        protocol = "tcp"
        external_port = 443
        destination = "{VM}"
        destination_port = 443
        [[port_forwards]]
        protocol = "udp"
        external_port = 51820
        destination = "{VM}"
        destination_port = 51820
        "#
    );
    toml::from_str(&text).expect("test spec")
}

pub fn router_state(forwarding: bool) -> HostNetState {
    HostNetState::new(router_spec(forwarding)).expect("valid test state")
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// How long a path that must work may take (generous: CI machines are shared).
pub const PATIENCE: Duration = Duration::from_secs(3);
/// How long a path that must be blocked is given to prove it is not (a slow machine can only
/// make this pass wrongly, never fail wrongly, so the positive controls matter).
pub const BLOCKED: Duration = Duration::from_millis(700);

pub fn sock(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("test address"), port)
}

pub fn tcp_listen(ns: &Netns, at: SocketAddr) -> TcpListener {
    let listener = ns.enter(|| TcpListener::bind(at)).expect("bind tcp listener");
    listener.set_nonblocking(true).expect("nonblocking");
    listener
}

/// Connects from `ns` and sends `hello`; true when the connection was made.
pub fn tcp_connect(ns: &Netns, to: SocketAddr, wait: Duration) -> bool {
    ns.enter(|| match TcpStream::connect_timeout(&to, wait) {
        Ok(mut s) => s.write_all(b"hello").is_ok(),
        Err(_) => false,
    })
}

/// The peer address of the first connection `listener` accepts within `wait`, and the bytes
/// it sent.
pub fn tcp_accept(listener: &TcpListener, wait: Duration) -> Option<(SocketAddr, Vec<u8>)> {
    let end = Instant::now() + wait;
    while Instant::now() < end {
        match listener.accept() {
            Ok((mut s, peer)) => {
                s.set_nonblocking(false).ok()?;
                s.set_read_timeout(Some(wait)).ok()?;
                let mut buf = [0u8; 5];
                s.read_exact(&mut buf).ok()?;
                return Some((peer, buf.to_vec()));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    None
}

pub fn udp_bind(ns: &Netns, at: SocketAddr) -> UdpSocket {
    let socket = ns.enter(|| UdpSocket::bind(at)).expect("bind udp");
    socket.set_read_timeout(Some(PATIENCE)).expect("timeout");
    socket
}

/// Sends a datagram from `ns` to `to` (several times: the first may be lost to ARP).
pub fn udp_send(ns: &Netns, to: SocketAddr, payload: &[u8]) {
    ns.enter(|| {
        let socket = UdpSocket::bind("0.0.0.0:0").expect("udp client");
        for _ in 0..3 {
            let _ = socket.send_to(payload, to);
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

pub fn udp_recv(socket: &UdpSocket, wait: Duration) -> Option<(SocketAddr, Vec<u8>)> {
    socket.set_read_timeout(Some(wait)).ok()?;
    let mut buf = [0u8; 64];
    let (n, from) = socket.recv_from(&mut buf).ok()?;
    Some((from, buf[..n].to_vec()))
}

/// `ping` from `ns` (up to three echo requests 200 ms apart); true when one is answered.
pub fn ping(ns: &Netns, to: &str) -> bool {
    ns.exec(["ping", "-c", "3", "-i", "0.2", "-w", "2", "-W", "1", to]).status.success()
}
