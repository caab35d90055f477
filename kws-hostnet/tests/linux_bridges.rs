//! Isolation between owner bridges (`isolated_bridges`) against the real kernel, proven with
//! packets in namespaces this test makes:
//!
//! ```text
//!  a1 10.41.1.2 ─┐                                  ┌─ b1 10.41.2.2
//!  a2 10.41.1.3 ─┴ kwsb0a290100 10.41.1.1  router  kwsb0a290200 10.41.2.1
//!                                           │ up0 198.51.100.1
//!                                   client cl0 198.51.100.2
//! ```
//!
//! The bridges are made by hand, as Docker makes owner bridges: kws lists them, it does not own
//! them. `br_netfilter`'s `bridge-nf-call-iptables` is on in the router (as Docker sets it), so
//! frames bridged between a1 and a2 cross the inet forward hook too.

mod common;

use std::time::Duration;

use common::*;
use kws_hostnet::{HostNetSpec, HostNetState, HostNetwork, LinuxHostNetwork};
use kws_testenv::Netns;

const BRIDGE_A: &str = "kwsb0a290100";
const BRIDGE_B: &str = "kwsb0a290200";
const A1: &str = "10.41.1.2";
const A2: &str = "10.41.1.3";
const B1: &str = "10.41.2.2";
const GATEWAY_B: &str = "10.41.2.1";
/// The source port of the client's flow that the spoofing test reuses.
const CLIENT_PORT: u16 = 40_000;

struct Owners {
    client: Netns,
    router: Netns,
    a1: Netns,
    a2: Netns,
    b1: Netns,
    /// Whether `bridge-nf-call-iptables` is on in the router.
    br_netfilter: bool,
}

impl Owners {
    fn new() -> Option<Self> {
        let (client, router) = (Netns::new()?, Netns::new()?);
        let (a1, a2, b1) = (Netns::new()?, Netns::new()?, Netns::new()?);
        // No reverse-path filter: the spoofing test must be stopped by kws's rule, not by it.
        for key in ["net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"] {
            router.run(["sysctl", "-qw", key]);
        }
        client.veth_to(&router, ("cl0", "198.51.100.2/24"), ("up0", "198.51.100.1/24"));
        router.run(["ip", "link", "add", BRIDGE_A, "type", "bridge"]);
        router.run(["ip", "addr", "add", "10.41.1.1/24", "dev", BRIDGE_A]);
        router.run(["ip", "link", "set", BRIDGE_A, "up"]);
        for (ns, port, bridge, addr, gw) in [
            (&a1, "va1", BRIDGE_A, A1, "10.41.1.1"),
            (&a2, "va2", BRIDGE_A, A2, "10.41.1.1"),
            (&b1, "vb1", BRIDGE_B, B1, GATEWAY_B),
        ] {
            let peer = ["ip", "link", "add", port, "type", "veth", "peer", "name", "eth0"];
            router.run(peer.into_iter().chain(["netns", ns.name()]));
            router.run(["ip", "link", "set", port, "up"]);
            if bridge == BRIDGE_A {
                router.run(["ip", "link", "set", port, "master", bridge]);
            }
            ns.run(["ip", "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            ns.run(["ip", "link", "set", "eth0", "up"]);
            ns.run(["ip", "route", "add", "default", "via", gw]);
        }
        let br_netfilter = enable_br_netfilter(&router);
        Some(Self { client, router, a1, a2, b1, br_netfilter })
    }

    /// The topology with kws's state applied without isolation, b1 attached to the bridge
    /// kws made, the backend and a runtime to drive it.
    fn applied_without_isolation() -> Option<(Self, LinuxHostNetwork, tokio::runtime::Runtime)> {
        let owners = Self::new()?;
        let (net, rt) = (owners.backend(), rt());
        rt.block_on(net.apply(&owners_state(false))).expect("apply without isolation");
        owners.router.run(["ip", "link", "set", "vb1", "master", BRIDGE_B]);
        Some((owners, net, rt))
    }

    fn backend(&self) -> LinuxHostNetwork {
        self.router.enter(LinuxHostNetwork::new).expect("linux backend in the router namespace")
    }

    fn table(&self) -> String {
        self.router.run(["nft", "list", "table", "inet", "kws"])
    }

    /// True when a TCP connection from `from` to `to` is made and accepted by `to`'s listener.
    fn tcp(&self, from: &Netns, to: (&Netns, &str), port: u16, wait: Duration) -> bool {
        let listener = tcp_listen(to.0, sock(to.1, port));
        tcp_connect(from, sock(to.1, port), wait) && tcp_accept(&listener, wait).is_some()
    }

    /// Counts, in a table of the test's own, the forward-hook packets matching `what`.
    fn count_forwarded(&self, what: &str) {
        let probe = format!(
            "add table inet probe; \
             add chain inet probe counted {{ type filter hook forward priority 10; }}; \
             add rule inet probe counted {what} counter"
        );
        self.router.run(["nft", &probe]);
    }

    fn counted(&self) -> u64 {
        let listed = self.router.run(["nft", "list", "chain", "inet", "probe", "counted"]);
        let packets = listed.split("counter packets ").nth(1).expect("counter");
        packets.split(' ').next().and_then(|n| n.parse().ok()).expect("packet count")
    }
}

/// Turns `bridge-nf-call-iptables` on in `ns` (per namespace since Linux 5.3). False, after a
/// loud message, when `br_netfilter` is not loaded: the tests then run without it.
fn enable_br_netfilter(ns: &Netns) -> bool {
    let key = "net.bridge.bridge-nf-call-iptables";
    let read = ns.exec(["sysctl", "-n", key]);
    if !read.status.success() {
        eprintln!("br_netfilter is not loaded: same-bridge traffic is tested without it");
        return false;
    }
    if String::from_utf8_lossy(&read.stdout).trim() != "1" {
        ns.run(["sysctl", "-qw", &format!("{key}=1")]);
    }
    ns.run(["sysctl", "-n", key]).trim() == "1"
}

/// Owner B's bridge is kws's own (declared in `bridges`, so port forwards may land in it),
/// owner A's is made by hand like a Docker bridge; masquerade out of the uplink for both, a
/// TCP and a UDP port forward into owner B; `isolated` lists both bridges.
fn owners_state(isolated: bool) -> HostNetState {
    let text = format!(
        r#"
        forwarding = {{ ipv4 = true, ipv6 = false }}
        [[bridges]]
        name = "{BRIDGE_B}"
        addresses = ["10.41.2.1/24"]
        [[masquerade]]
        source = "10.41.1.0/24"
        out_interface = "up0"
        [[masquerade]]
        source = "10.41.2.0/24"
        out_interface = "up0"
        [[port_forwards]]
        protocol = "tcp"
        external_port = 8443
        destination = "{B1}"
        destination_port = 8443
        [[port_forwards]]
        protocol = "udp"
        external_port = 51820
        destination = "{B1}"
        destination_port = 51820
        "#
    );
    let mut spec: HostNetSpec = toml::from_str(&text).expect("test spec");
    if isolated {
        spec.isolated_bridges =
            vec![BRIDGE_A.parse().expect("name"), BRIDGE_B.parse().expect("name")];
    }
    HostNetState::new(spec).expect("valid test state")
}

/// Sends `payload` (three times: the first may wait for ARP) from port `from_port` of `ns`.
fn udp_from(ns: &Netns, from_port: u16, to: std::net::SocketAddr, payload: &[u8]) {
    ns.enter(|| {
        let socket = std::net::UdpSocket::bind(("0.0.0.0", from_port)).expect("udp sender");
        for _ in 0..3 {
            let _ = socket.send_to(payload, to);
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

/// The sender of the first datagram carrying `payload` that `socket` receives within `wait`.
fn udp_expect(
    socket: &std::net::UdpSocket,
    payload: &[u8],
    wait: Duration,
) -> Option<std::net::SocketAddr> {
    let end = std::time::Instant::now() + wait;
    while let Some(left) = end.checked_duration_since(std::time::Instant::now()) {
        match udp_recv(socket, left.max(Duration::from_millis(1))) {
            Some((from, bytes)) if bytes == payload => return Some(from),
            Some(_) => {}
            None => return None,
        }
    }
    None
}

/// With `isolated_bridges`, the two owners cannot reach each other in either direction (new
/// connections, an already open one, ping, and a port forward hairpinned through the host's
/// public address), while traffic inside one bridge (through the forward hook, with
/// br_netfilter), to the uplink, from the uplink through a port forward, and to and from the
/// host itself still flows. Re-applying changes nothing, `current()` reads the list back, and
/// removing the field removes the rules.
#[test]
fn isolated_bridges_drop_traffic_between_owners_only() {
    let Some((o, net, rt)) = Owners::applied_without_isolation() else { return };
    // Control: without the field the router forwards between the owners' bridges.
    assert!(ping(&o.a1, B1), "control: a1 must reach b1 without isolation");
    assert!(o.tcp(&o.b1, (&o.a1, A1), 7000, PATIENCE), "control: tcp b1 -> a1");
    let open_listener = tcp_listen(&o.b1, sock(B1, 7010));
    let mut open = o.a1.enter(|| std::net::TcpStream::connect(sock(B1, 7010))).expect("open");
    let (mut open_b, _) = loop {
        if let Ok(accepted) = open_listener.accept() {
            break accepted;
        }
        std::thread::sleep(Duration::from_millis(10));
    };

    let isolated = owners_state(true);
    let report = rt.block_on(net.apply(&isolated)).expect("apply with isolation");
    assert!(report.netfilter_replaced && report.links_changed == 0, "{report:?}");
    assert!(!ping(&o.a1, B1), "a1 reached b1");
    assert!(!ping(&o.b1, A1), "b1 reached a1");
    assert!(!o.tcp(&o.a1, (&o.b1, B1), 7001, BLOCKED), "tcp a1 -> b1 crossed owners");
    assert!(!o.tcp(&o.b1, (&o.a1, A1), 7002, BLOCKED), "tcp b1 -> a1 crossed owners");
    use std::io::{Read as _, Write as _};
    open.write_all(b"after").expect("write on the open connection");
    open_b.set_nonblocking(false).expect("blocking");
    open_b.set_read_timeout(Some(BLOCKED)).expect("timeout");
    let mut buf = [0u8; 5];
    assert!(open_b.read_exact(&mut buf).is_err(), "a connection opened before isolation crossed");
    // a1 -> the host's public address, forwarded into owner B: a flow kws DNATs, accepts and
    // marks, and it still may not cross between the bridges.
    let forwarded = tcp_listen(&o.b1, sock(B1, 8443));
    assert!(!tcp_connect(&o.a1, sock(UPLINK, 8443), BLOCKED), "a port forward let a1 into B");

    o.count_forwarded(&format!("iifname \"{BRIDGE_A}\" oifname \"{BRIDGE_A}\""));
    assert!(ping(&o.a1, A2), "a1 must reach a2 on the same bridge");
    assert!(o.tcp(&o.a1, (&o.a2, A2), 7003, PATIENCE), "tcp a1 -> a2 on the same bridge");
    if o.br_netfilter {
        assert!(o.counted() > 0, "bridged frames must cross the forward hook");
    }
    assert!(o.tcp(&o.a1, (&o.client, CLIENT), 7004, PATIENCE), "a1 must reach the uplink");
    assert!(o.tcp(&o.b1, (&o.client, CLIENT), 7005, PATIENCE), "b1 must reach the uplink");
    assert!(tcp_connect(&o.client, sock(UPLINK, 8443), PATIENCE), "port forward from outside");
    let (from, _) = tcp_accept(&forwarded, PATIENCE).expect("b1 accepted the forward");
    assert_eq!(from.ip().to_string(), CLIENT, "only the client's connection may arrive");
    assert!(o.tcp(&o.a1, (&o.router, GATEWAY_B), 7006, PATIENCE), "a1 -> the host (input)");
    assert!(ping(&o.router, A1) && ping(&o.router, B1), "the host must reach both owners");

    let table = o.table();
    let again = rt.block_on(net.apply(&isolated)).expect("apply again");
    assert!(again.changed_nothing(), "{again:?}");
    assert_eq!(o.table(), table);
    rt.block_on(o.backend().apply(&isolated)).expect("apply from a fresh backend");
    assert_eq!(o.table(), table, "a re-run batch must give the same table");
    let back = rt.block_on(net.current()).expect("current");
    assert_eq!(
        kws_hostnet::testkit::normalized(&back),
        kws_hostnet::testkit::normalized(&isolated)
    );

    let report = rt.block_on(net.apply(&owners_state(false))).expect("remove the field");
    assert!(report.netfilter_replaced);
    let table = o.table();
    assert!(!table.contains("isolated_bridge") && !table.contains("kws bridges"), "{table}");
    assert!(rt.block_on(net.current()).expect("current").isolated_bridges.is_empty());
    assert!(ping(&o.a1, B1), "without the field the owners reach each other again");
    rt.block_on(net.teardown()).expect("teardown");
    assert!(!o.router.run(["nft", "list", "tables"]).contains("kws"));
}

/// A flow kws accepted and marked (a client's UDP port forward into owner B) cannot be reused
/// by owner A: a datagram from a1 carrying the client's address and port matches the client's
/// conntrack entry (DNAT and mark included), yet it is dropped, because the isolation rule
/// comes before the accept of marked flows. Control: without the field it reaches b1, as part
/// of the marked flow.
#[test]
fn a_flow_kws_accepted_cannot_carry_another_owners_packets() {
    let Some((o, net, rt)) = Owners::applied_without_isolation() else { return };
    let spoof = "add table ip spoof; \
        add chain ip spoof out { type nat hook postrouting priority srcnat; }; \
        add rule ip spoof out udp dport 51820 snat to 198.51.100.2";
    o.a1.run(["nft", spoof]);
    o.count_forwarded(&format!(
        "iifname \"{BRIDGE_A}\" ct mark & {:#x} != 0",
        kws_hostnet::CONNMARK
    ));
    let b = udp_bind(&o.b1, sock(B1, 51820));
    let to = sock(UPLINK, 51820);
    let client = sock(CLIENT, CLIENT_PORT);

    udp_from(&o.client, CLIENT_PORT, to, b"legit");
    assert_eq!(udp_expect(&b, b"legit", PATIENCE), Some(client), "the port forward");
    udp_from(&o.a1, CLIENT_PORT, to, b"spoof");
    assert_eq!(udp_expect(&b, b"spoof", PATIENCE), Some(client), "control: the spoof passes");
    assert!(o.counted() > 0, "control: the spoof must ride the client's marked flow");

    rt.block_on(net.apply(&owners_state(true))).expect("apply with isolation");
    udp_from(&o.client, CLIENT_PORT, to, b"legit2");
    assert_eq!(udp_expect(&b, b"legit2", PATIENCE), Some(client), "the port forward still works");
    udp_from(&o.a1, CLIENT_PORT, to, b"spoof2");
    assert_eq!(udp_expect(&b, b"spoof2", BLOCKED), None, "a1 crossed into B on a marked flow");
}
