//! A two-namespace lab for real tunnels: a server namespace running the `VpnService`'s
//! wireguard-go under its supervisor, a client namespace running its own wireguard-go that is
//! configured only from the wg-quick file the library rendered, and a veth pair between them.

#![allow(dead_code, unreachable_pub)]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use kws_core::{DnsLabel, IfName};
use kws_ipam::MemoryAllocator;
use kws_testenv::{Netns, WgQuickClient, random_suffix};
use kws_wg::{
    Endpoint, MemoryPeerStore, PrivateKey, Supervisor, UapiDevice, VpnService, VpnSettings,
    WireguardGo,
};

/// The server's VPN address in every lab.
pub const SERVER_VPN: &str = "10.8.0.1";
/// The IPv6 VPN subnet of labs started with IPv6; the server holds `fd08::1`.
pub const SERVER_VPN6_SUBNET: &str = "fd08::/64";
const SERVER_VETH: &str = "10.99.0.1";

pub struct Lab {
    pub server: Netns,
    pub client: Netns,
    pub server_if: IfName,
    pub client_if: String,
    client_wg: Option<WgQuickClient>,
}

pub fn sockets(names: &[&str]) -> Vec<PathBuf> {
    names.iter().map(|n| PathBuf::from(format!("/var/run/wireguard/{n}.sock"))).collect()
}

impl Lab {
    /// Two namespaces joined by veth; `None` (skipped loudly) when namespaces are unavailable.
    pub fn new() -> Option<Self> {
        let server = Netns::new()?;
        let client = Netns::new()?;
        server.veth_to(&client, ("vs0", "10.99.0.1/30"), ("vc0", "10.99.0.2/30"));
        let tag = random_suffix(6);
        Some(Self {
            server,
            client,
            server_if: IfName::parse(&format!("kwss{tag}")).expect("interface name"),
            client_if: format!("kwsc{tag}"),
            client_wg: None,
        })
    }

    /// Server settings: `10.8.0.0/24` (and `fd08::/64` when `v6`), a random port on the
    /// server's veth address.
    pub fn settings(&self, v6: bool) -> VpnSettings {
        let port = 20_000 + u16::from_str_radix(&random_suffix(3), 16).expect("hex") * 8;
        let endpoint = Endpoint::parse(&format!("{SERVER_VETH}:{port}")).expect("endpoint");
        let mut settings = VpnSettings::new(
            self.server_if.clone(),
            PrivateKey::generate().expect("randomness"),
            endpoint,
            "10.8.0.0/24".parse().expect("net"),
        )
        .expect("settings");
        if v6 {
            settings.subnet_v6 = Some(SERVER_VPN6_SUBNET.parse().expect("v6 subnet"));
        }
        settings
    }

    /// A `VpnService` on embedded stores and a real wireguard-go device in the server
    /// namespace, supervised (reconcile every `every`); with an IPv6 subnet when `v6`.
    pub async fn start_server(&self, every: Duration, v6: bool) -> (Arc<VpnService>, Supervisor) {
        let settings = self.settings(v6);
        let mut launcher = WireguardGo::new(self.server_if.clone())
            .netns(DnsLabel::parse(self.server.name()).expect("netns name"));
        for addr in settings.server_addresses() {
            launcher = launcher.address(addr);
        }
        let service = VpnService::new(
            settings,
            Arc::new(MemoryAllocator::new()),
            Arc::new(MemoryPeerStore::new()),
            Arc::new(UapiDevice::new(self.server_if.clone())),
        )
        .expect("service");
        service.create_pools().await.expect("pools");
        let service = Arc::new(service);
        let mut supervisor = service.supervise(launcher, every);
        assert!(supervisor.wait_starts(1, Duration::from_secs(15)).await, "server never started");
        (service, supervisor)
    }

    /// Starts the client's wireguard-go and configures it from `wg_quick` alone
    /// (kws_testenv::WgQuickClient).
    pub fn start_client(&mut self, wg_quick: &str) {
        self.client_wg = Some(WgQuickClient::start(&self.client, &self.client_if, wg_quick));
    }

    /// One ping from the client (optionally from `source`) to `dst`.
    pub fn ping_once(&self, source: Option<&str>, dst: &str) -> bool {
        let mut argv = vec!["ping", "-c1", "-W1", "-n", "-q"];
        if let Some(src) = source {
            argv.extend(["-I", src]);
        }
        argv.push(dst);
        tokio::task::block_in_place(|| self.client.exec(argv).status.success())
    }

    /// True as soon as a ping gets through within `within`.
    pub fn ping_within(&self, source: Option<&str>, dst: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.ping_once(source, dst) {
                return true;
            }
        }
        false
    }

    /// True when `tries` pings in a row all fail.
    pub fn ping_blocked(&self, source: Option<&str>, dst: &str, tries: usize) -> bool {
        (0..tries).all(|_| !self.ping_once(source, dst))
    }

    /// A TCP echo through the tunnel: a listener in the server namespace echoes one
    /// connection; the client sends `payload` and must read the same bytes back.
    pub fn tcp_echo(&self, payload: &[u8]) -> Vec<u8> {
        let port = 7000;
        tokio::task::block_in_place(|| {
            std::thread::scope(|s| {
                let (ready_tx, ready_rx) = std::sync::mpsc::channel();
                let server = s.spawn(move || {
                    self.server.enter(move || {
                        let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind echo");
                        ready_tx.send(()).expect("signal");
                        listener.set_nonblocking(true).expect("nonblocking");
                        let deadline = Instant::now() + Duration::from_secs(10);
                        let mut conn = loop {
                            match listener.accept() {
                                Ok((conn, _)) => break conn,
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                    assert!(Instant::now() < deadline, "no connection came");
                                    std::thread::sleep(Duration::from_millis(10));
                                }
                                Err(e) => panic!("accept: {e}"),
                            }
                        };
                        conn.set_nonblocking(false).expect("blocking");
                        let mut buf = Vec::new();
                        conn.read_to_end(&mut buf).expect("read");
                        conn.write_all(&buf).expect("echo");
                    })
                });
                ready_rx.recv().expect("echo server ready");
                let echoed = self.client.enter(|| {
                    let addr: SocketAddr = format!("{SERVER_VPN}:{port}").parse().expect("addr");
                    let mut conn =
                        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
                    conn.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
                    conn.write_all(payload).expect("send");
                    conn.shutdown(std::net::Shutdown::Write).expect("shutdown");
                    let mut back = Vec::new();
                    conn.read_to_end(&mut back).expect("read echo");
                    back
                });
                server.join().expect("echo server");
                echoed
            })
        })
    }

    /// Runs `wg` with `args` against the server interface (as an operator would by hand).
    pub fn wg_by_hand(&self, args: &[&str]) {
        let mut argv = vec!["wg"];
        argv.extend_from_slice(args);
        self.server.run(argv);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        drop(self.client_wg.take());
        // SIGKILLed userspace interfaces leave their sockets behind.
        for socket in sockets(&[self.server_if.as_str(), &self.client_if]) {
            let _ = std::fs::remove_file(socket);
        }
    }
}
