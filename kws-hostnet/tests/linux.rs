//! The Linux backend against the real kernel: rtnetlink, sysctls and nftables, inside network
//! namespaces this test makes (client, router, VM, VPN peers), proven with real packets.

mod common;

use std::{sync::Arc, time::Duration};

use common::*;
use kws_hostnet::{HostNetState, HostNetwork, PeerIsolation, PeerRule};

/// Issue check 1: DNAT: tcp 443 and udp 51820 sent to the host's address reach listeners in the VM.
#[test]
fn dnat_reaches_listeners_in_the_vm() {
    let Some(topo) = Topology::new() else { return };
    let net = topo.backend();
    let tcp = tcp_listen(&topo.vm, sock(VM, 443));
    let udp = udp_bind(&topo.vm, sock(VM, 51820));
    // Before kws: the client has no route to the VM subnet and nothing is forwarded.
    assert!(!tcp_connect(&topo.client, sock(UPLINK, 443), BLOCKED));

    rt().block_on(net.apply(&router_state(true))).expect("apply");
    topo.attach_vm();
    assert!(tcp_connect(&topo.client, sock(UPLINK, 443), PATIENCE), "tcp 443 not forwarded");
    let (from, bytes) = tcp_accept(&tcp, PATIENCE).expect("VM listener got the connection");
    assert_eq!(from.ip().to_string(), CLIENT, "DNAT keeps the client's source");
    assert_eq!(bytes, b"hello");
    udp_send(&topo.client, sock(UPLINK, 51820), b"wg-hi");
    let (from, bytes) = udp_recv(&udp, PATIENCE).expect("VM got the datagram");
    assert_eq!((from.ip().to_string().as_str(), bytes.as_slice()), (CLIENT, &b"wg-hi"[..]));
}

/// Issue check 2: Masquerade: the VM's outbound connection arrives at the client from the host's address.
#[test]
fn masquerade_rewrites_the_vm_source_to_the_uplink_address() {
    let Some(topo) = Topology::new() else { return };
    let net = topo.backend();
    rt().block_on(net.apply(&router_state(true))).expect("apply");
    topo.attach_vm();
    let listener = tcp_listen(&topo.client, sock(CLIENT, 8080));
    assert!(tcp_connect(&topo.vm, sock(CLIENT, 8080), PATIENCE), "VM cannot reach the client");
    let (from, _) = tcp_accept(&listener, PATIENCE).expect("client accepted");
    assert_eq!(from.ip().to_string(), UPLINK, "the VM's source must be masqueraded");
}

/// Issue check 3: With forwarding off, traffic is blocked; the sysctl is the namespace's, not the host's.
#[test]
fn forwarding_off_blocks_traffic_and_sysctls_stay_in_the_namespace() {
    let Some(topo) = Topology::new() else { return };
    let host_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("host");
    let net = topo.backend();
    let rt = rt();
    rt.block_on(net.apply(&router_state(false))).expect("apply off");
    assert_eq!(topo.router.run(["sysctl", "-n", "net.ipv4.ip_forward"]).trim(), "0");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("host"),
        host_before
    );
    topo.attach_vm();
    let tcp = tcp_listen(&topo.vm, sock(VM, 443));
    assert!(!tcp_connect(&topo.client, sock(UPLINK, 443), BLOCKED), "forwarded while off");
    assert!(tcp_accept(&tcp, Duration::from_millis(100)).is_none());

    let report = rt.block_on(net.apply(&router_state(true))).expect("apply on");
    assert_eq!(report.sysctls_written, 1, "only ip_forward differed");
    assert!(!report.netfilter_replaced || report.links_changed == 0);
    assert_eq!(topo.router.run(["sysctl", "-n", "net.ipv4.ip_forward"]).trim(), "1");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("host"),
        host_before
    );
    assert!(tcp_connect(&topo.client, sock(UPLINK, 443), PATIENCE), "blocked while on");
    assert!(tcp_accept(&tcp, PATIENCE).is_some());
    let again = rt.block_on(net.apply(&router_state(true))).expect("apply again");
    assert_eq!(again.sysctls_written, 0, "sysctls are written only when they differ");
}

/// Issue check 4: Isolation: a peer reaches only its own destinations; peer-to-peer traffic is dropped.
#[test]
fn isolation_keeps_peers_to_their_own_instances() {
    let Some(topo) = Topology::new() else { return };
    let Some(peers) = Peers::new(&topo.router) else { return };
    let net = topo.backend();
    let mut spec = router_spec(true);
    spec.isolation = Some(PeerIsolation {
        interface: "wg0".parse().expect("ifname"),
        peers: vec![
            PeerRule {
                address: PEER_A.parse().expect("ip"),
                allowed: vec!["192.168.69.2/32".parse().expect("net")],
            },
            PeerRule {
                address: PEER_B.parse().expect("ip"),
                allowed: vec!["192.168.69.3/32".parse().expect("net")],
            },
        ],
    });
    let state = HostNetState::new(spec).expect("valid");
    rt().block_on(net.apply(&router_state(true))).expect("apply without isolation");
    topo.attach_vm();
    // Control: without isolation the hub forwards peer to peer and to every instance.
    assert!(ping(&peers.a, PEER_B), "control: peer A must reach peer B through the hub");
    assert!(ping(&peers.a, VM_B), "control: peer A reaches the other instance");

    rt().block_on(net.apply(&state)).expect("apply with isolation");
    let own = tcp_listen(&topo.vm, sock(VM, 22));
    let other = tcp_listen(&topo.vm, sock(VM_B, 22));
    assert!(tcp_connect(&peers.a, sock(VM, 22), PATIENCE), "peer A must reach its instance");
    assert_eq!(tcp_accept(&own, PATIENCE).expect("accepted").0.ip().to_string(), PEER_A);
    assert!(!tcp_connect(&peers.a, sock(VM_B, 22), BLOCKED), "peer A reached B's instance");
    assert!(tcp_accept(&other, Duration::from_millis(100)).is_none());
    assert!(!ping(&peers.a, PEER_B), "peer-to-peer traffic must be dropped");
    assert!(!ping(&peers.b, PEER_A), "peer-to-peer traffic must be dropped");
    assert!(tcp_connect(&peers.b, sock(VM_B, 22), PATIENCE), "peer B must reach its instance");
    assert_eq!(tcp_accept(&other, PATIENCE).expect("accepted").0.ip().to_string(), PEER_B);
    // Nor the host itself: a service listening on one of its addresses is out of reach, but
    // ICMP to it still answers.
    let host_service = tcp_listen(&topo.router, sock("192.168.69.1", 2222));
    assert!(
        !tcp_connect(&peers.a, sock("192.168.69.1", 2222), BLOCKED),
        "a peer reached a host service"
    );
    assert!(tcp_accept(&host_service, Duration::from_millis(100)).is_none());
    assert!(ping(&peers.a, "192.168.69.1"), "ICMP to the host answers");
}

/// Issue check 5: A second `apply` leaves the ruleset byte-identical, from the same backend (no change at
/// at all) and from a fresh one (the batch runs again and yields the same table).
#[test]
fn second_apply_leaves_the_ruleset_byte_identical() {
    let Some(topo) = Topology::new() else { return };
    let net = topo.backend();
    let rt = rt();
    let state = router_state(true);
    rt.block_on(net.apply(&state)).expect("apply");
    let first = topo.ruleset();
    let link = || {
        let brief = topo.router.run(["ip", "-br", "link", "show", "vmbr1"]);
        (brief, topo.router.run(["ip", "-4", "-br", "addr", "show", "vmbr1"]))
    };
    let links = link();
    let report = rt.block_on(net.apply(&state)).expect("apply again");
    assert!(report.changed_nothing(), "{report:?}");
    assert_eq!(topo.ruleset(), first);
    let fresh = topo.backend();
    let report = rt.block_on(fresh.apply(&state)).expect("apply from a fresh backend");
    assert_eq!((report.links_changed, report.addresses_changed, report.sysctls_written), (0, 0, 0));
    assert_eq!(topo.ruleset(), first, "a re-run batch must give the same ruleset");
    assert_eq!(link(), links, "the bridge (index, MAC, flags, addresses) must be the same");
}

/// Issue check 6: A table and a link that another tool created are untouched by apply, change and teardown.
#[test]
fn another_tools_table_and_links_are_untouched() {
    let Some(topo) = Topology::new() else { return };
    let foreign = "table ip other {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport 9 counter packets 0 bytes 0 drop\n\t}\n}\n";
    let mut load = topo.router.command(["nft", "-f", "-"]);
    load.stdin(std::process::Stdio::piped());
    let mut child = load.spawn().expect("nft");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), foreign.as_bytes())
        .expect("write");
    assert!(child.wait().expect("nft").success());
    topo.router.run(["ip", "link", "add", "keepme", "type", "bridge"]);
    topo.router.run(["ip", "addr", "add", "10.99.0.1/24", "dev", "keepme"]);
    let other = || topo.router.run(["nft", "list", "table", "ip", "other"]);
    let keepme = || topo.router.run(["ip", "-d", "addr", "show", "keepme"]);
    let (table_before, link_before) = (other(), keepme());

    let net = topo.backend();
    let rt = rt();
    rt.block_on(net.apply(&router_state(true))).expect("apply");
    assert_eq!(other(), table_before);
    let mut changed = router_spec(true);
    changed.port_forwards.pop();
    rt.block_on(net.apply(&HostNetState::new(changed).expect("valid"))).expect("apply change");
    assert_eq!(other(), table_before);
    rt.block_on(net.teardown()).expect("teardown");
    assert_eq!(other(), table_before);
    assert_eq!(keepme(), link_before, "a link kws does not own was changed");
}

/// Issue check 7: after `teardown` nothing of kws remains: no table, no bridge, no DOCKER-USER rule; the
/// conformance suite passes directly and through `dyn HostNetwork`.
#[test]
fn teardown_leaves_nothing_of_kws() {
    let Some(topo) = Topology::new() else { return };
    docker_like_rules(&topo);
    let rt = rt();
    let net = topo.backend();
    rt.block_on(kws_hostnet::testkit::apply_read_reapply_teardown(&net, &router_state(true)));
    let boxed: Box<dyn HostNetwork> = Box::new(topo.backend());
    rt.block_on(kws_hostnet::testkit::apply_read_reapply_teardown(
        boxed.as_ref(),
        &router_state(true),
    ));
    let shared: Arc<dyn HostNetwork> = Arc::new(topo.backend());
    let mut smaller = router_spec(false);
    smaller.masquerade.clear();
    let smaller = HostNetState::new(smaller).expect("valid");
    rt.block_on(kws_hostnet::testkit::apply_converges_on_change(
        shared.as_ref(),
        &router_state(true),
        &smaller,
    ));

    let ruleset = topo.ruleset();
    assert!(!ruleset.contains("table inet kws"), "kws table left:\n{ruleset}");
    assert!(!ruleset.contains("kws-hostnet"), "DOCKER-USER rule left:\n{ruleset}");
    assert!(ruleset.contains("chain DOCKER-USER"), "Docker's own chain must stay");
    let links = topo.router.run(["ip", "-d", "link", "show"]);
    assert!(!links.contains("vmbr1") && !links.contains("kws-hostnet"), "links left:\n{links}");
}

/// Loads what Docker puts in a host's FORWARD path into the router namespace.
fn docker_like_rules(topo: &Topology) {
    topo.router.run(["iptables", "-w", "-P", "FORWARD", "DROP"]);
    topo.router.run(["iptables", "-w", "-N", "DOCKER-USER"]);
    topo.router.run(["iptables", "-w", "-N", "DOCKER-ISOLATION-STAGE-1"]);
    topo.router.run(["iptables", "-w", "-A", "FORWARD", "-j", "DOCKER-USER"]);
    topo.router.run(["iptables", "-w", "-A", "FORWARD", "-j", "DOCKER-ISOLATION-STAGE-1"]);
    topo.router.run(["iptables", "-w", "-A", "DOCKER-USER", "-j", "RETURN"]);
}

/// Docker coexistence: with FORWARD policy drop and DOCKER-USER present, what kws allows passes;
/// without kws's DOCKER-USER accept the same traffic is dropped (so the test can fail).
#[test]
fn kws_traffic_passes_dockers_forward_drop_policy() {
    let Some(topo) = Topology::new() else { return };
    docker_like_rules(&topo);
    let net = topo.backend();
    let rt = rt();
    let report = rt.block_on(net.apply(&router_state(true))).expect("apply");
    assert_eq!(report.foreign_chain_rules_added, 1);
    topo.attach_vm();
    let tcp = tcp_listen(&topo.vm, sock(VM, 443));
    assert!(tcp_connect(&topo.client, sock(UPLINK, 443), PATIENCE), "DNAT blocked by Docker");
    assert!(tcp_accept(&tcp, PATIENCE).is_some());
    let out = tcp_listen(&topo.client, sock(CLIENT, 8080));
    assert!(tcp_connect(&topo.vm, sock(CLIENT, 8080), PATIENCE), "masquerade blocked by Docker");
    assert!(tcp_accept(&out, PATIENCE).is_some());

    let mut delete = vec!["iptables", "-w", "-D", "DOCKER-USER"];
    delete.extend(kws_hostnet::DOCKER_USER_RULE);
    topo.router.run(&delete);
    assert!(!tcp_connect(&topo.client, sock(UPLINK, 443), BLOCKED), "control: Docker must drop");
    let report = rt.block_on(net.apply(&router_state(true))).expect("re-apply");
    assert_eq!(report.foreign_chain_rules_added, 1, "apply must restore the DOCKER-USER accept");
    assert!(tcp_connect(&topo.client, sock(UPLINK, 443), PATIENCE));
}

/// Issue check 8: After `nft flush ruleset` the reconcile loop restores kws's table.
#[test]
fn reconcile_loop_restores_the_table_after_a_flush() {
    let Some(topo) = Topology::new() else { return };
    let net = topo.backend();
    let state = router_state(true);
    let rt = rt();
    rt.block_on(async {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let looping = kws_hostnet::reconcile::reconcile_loop(
            &net,
            &state,
            Duration::from_millis(100),
            async {
                let _ = stopped.await;
            },
            |pass| assert!(pass.is_ok(), "reconcile pass failed: {pass:?}"),
        );
        let probe = async {
            wait_for(|| topo.ruleset().contains("table inet kws")).await;
            let before = topo.ruleset();
            topo.router.run(["nft", "flush", "ruleset"]);
            assert!(!topo.ruleset().contains("table inet kws"));
            wait_for(|| topo.ruleset().contains("table inet kws")).await;
            assert_eq!(topo.ruleset(), before, "the restored table must equal the original");
            let _ = stop.send(());
        };
        let (stats, ()) = tokio::join!(looping, probe);
        assert!(stats.repairs >= 2, "first apply and one repair: {stats:?}");
        assert_eq!(stats.failures, 0);
    });
    topo.attach_vm();
    let tcp = tcp_listen(&topo.vm, sock(VM, 443));
    assert!(tcp_connect(&topo.client, sock(UPLINK, 443), PATIENCE), "restored rules must work");
    assert!(tcp_accept(&tcp, PATIENCE).is_some());
}

async fn wait_for(mut check: impl FnMut() -> bool) {
    for _ in 0..50 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not met within 5 s");
}

/// IPv6: with IPv6 forwarding on, tcp 443 to the host's IPv6 address reaches the VM's IPv6
/// listener (the IPv6 map and accept set), next to the IPv4 forward of the same port.
#[test]
fn ipv6_dnat_reaches_the_vm() {
    let Some(topo) = Topology::new() else { return };
    for key in ["net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"] {
        topo.router.run(["sysctl", "-qw", key]);
    }
    topo.client.run(["ip", "-6", "addr", "add", "fd00:51::2/64", "dev", "cl0", "nodad"]);
    topo.router.run(["ip", "-6", "addr", "add", "fd00:51::1/64", "dev", "up0", "nodad"]);
    topo.vm.run(["ip", "-6", "addr", "add", "fd00:69::2/64", "dev", "vm0", "nodad"]);
    topo.vm.run(["ip", "-6", "route", "add", "default", "via", "fd00:69::1"]);
    let mut spec = router_spec(true);
    spec.forwarding.ipv6 = true;
    spec.bridges[0].addresses.push("fd00:69::1/64".parse().expect("net"));
    let mut v6 = spec.port_forwards[0].clone();
    v6.destination = "fd00:69::2".parse().expect("ip");
    spec.port_forwards.push(v6);
    let state = HostNetState::new(spec).expect("valid");
    let net = topo.backend();
    rt().block_on(net.apply(&state)).expect("apply");
    topo.attach_vm();
    let listener = tcp_listen(&topo.vm, sock("fd00:69::2", 443));
    assert!(tcp_connect(&topo.client, sock("fd00:51::1", 443), PATIENCE), "IPv6 DNAT failed");
    let (from, _) = tcp_accept(&listener, PATIENCE).expect("VM accepted");
    assert_eq!(from.ip().to_string(), "fd00:51::2");
    let back = rt().block_on(net.current()).expect("current");
    assert_eq!(kws_hostnet::testkit::normalized(&back), kws_hostnet::testkit::normalized(&state));
}
