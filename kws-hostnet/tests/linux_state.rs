//! The Linux backend's bookkeeping against the real kernel, in namespaces this test makes: links
//! and addresses converge, `current()` reads every item back, a foreign link is refused, and the
//! plan backend's script gives the same host as the backend.

mod common;

use common::*;
use kws_hostnet::{HostNetState, HostNetwork, LinuxHostNetwork};

/// The plan backend's script, run by `sh` in one namespace, gives the same table (isolated
/// bridges included) and bridge as the Linux backend in another.
#[test]
fn the_plan_script_and_the_linux_backend_agree() {
    let (Some(by_script), Some(by_backend)) =
        (kws_testenv::Netns::new(), kws_testenv::Netns::new())
    else {
        return;
    };
    let mut spec = router_spec(true);
    spec.isolated_bridges =
        vec!["vmbr1".parse().expect("name"), "kwsb0a290100".parse().expect("name")];
    let state = HostNetState::new(spec).expect("valid");
    let script = kws_hostnet::plan::render_apply(&state);
    let out = by_script.exec(["sh", "-c", &script]);
    assert!(out.status.success(), "plan script failed: {}", String::from_utf8_lossy(&out.stderr));
    let net = by_backend.enter(LinuxHostNetwork::new).expect("backend");
    rt().block_on(net.apply(&state)).expect("apply");
    let show = |ns: &kws_testenv::Netns| {
        (
            ns.run(["nft", "list", "ruleset"]),
            ns.run(["ip", "-4", "-br", "addr", "show", "vmbr1"]),
            ns.run(["ip", "-d", "link", "show", "vmbr1"]).contains("alias kws-hostnet"),
            ns.run(["sysctl", "-n", "net.ipv4.ip_forward"]),
        )
    };
    assert_eq!(show(&by_script), show(&by_backend));
}

/// A link with a managed bridge's name that is not a bridge is refused, and nothing changes.
#[test]
fn a_foreign_link_with_the_bridge_name_is_refused() {
    let Some(topo) = Topology::new() else { return };
    topo.router.run(["ip", "link", "add", "vmbr1", "type", "veth", "peer", "name", "vmbr1p"]);
    let net = topo.backend();
    let err = rt().block_on(net.apply(&router_state(true))).expect_err("must refuse");
    assert!(
        matches!(err, kws_hostnet::Error::ForeignLink { ref kind, .. } if kind == "veth"),
        "{err}"
    );
    assert!(!topo.ruleset().contains("kws"), "nothing may change after a refusal");
    assert!(topo.router.run(["ip", "-d", "link", "show", "vmbr1"]).contains("veth"));
}

/// `current()` reads back every kind of item: IPv6 addresses and forwards, forwards bound to an
/// incoming interface (including a name with `.` and `-`), masquerade, peer isolation and
/// isolated bridges.
#[test]
fn current_reads_back_every_kind_of_item() {
    let Some(ns) = kws_testenv::Netns::new() else { return };
    let state = HostNetState::from_toml(
        r#"
        forwarding = { ipv4 = true, ipv6 = true }
        isolated_bridges = ["kwsb0a290100", "kws-br.0", "kwsbr1"]
        [[bridges]]
        name = "kws-br.0"
        addresses = ["10.20.0.1/24", "fd00:20::1/64"]
        [[bridges]]
        name = "kwsbr1"
        addresses = ["10.21.0.1/24"]
        [[masquerade]]
        source = "10.20.0.0/24"
        out_interface = "eth0.10"
        [[masquerade]]
        source = "fd00:20::/64"
        out_interface = "eth0"
        [[port_forwards]]
        protocol = "tcp"
        in_interface = "eth0.10"
        external_port = 8443
        destination = "10.20.0.5"
        destination_port = 443
        [[port_forwards]]
        protocol = "udp"
        external_port = 8443
        destination = "10.21.0.5"
        destination_port = 53
        [[port_forwards]]
        protocol = "tcp"
        external_port = 443
        destination = "fd00:20::5"
        destination_port = 8443
        [isolation]
        interface = "wg-kws"
        [[isolation.peers]]
        address = "10.8.0.2"
        allowed = ["10.20.0.5/32", "10.21.0.0/24"]
        [[isolation.peers]]
        address = "fd00:8::2"
        allowed = ["fd00:20::5/128"]
        "#,
    )
    .expect("valid");
    let net = ns.enter(LinuxHostNetwork::new).expect("backend");
    let rt = rt();
    rt.block_on(kws_hostnet::testkit::apply_read_reapply_teardown(&net, &state));
    assert!(!ns.run(["nft", "list", "ruleset"]).contains("kws"));
}

/// Links and addresses are corrected when different: a stray address is removed, a downed
/// bridge comes back up, a changed address is replaced, a bridge no longer declared is deleted,
/// and a link kws does not own is left alone.
#[test]
fn links_and_addresses_are_corrected_when_different() {
    let Some(ns) = kws_testenv::Netns::new() else { return };
    ns.run(["ip", "link", "add", "other0", "type", "bridge"]);
    let two = HostNetState::from_toml(
        "[[bridges]]\nname = \"vmbr1\"\naddresses = [\"192.168.69.1/29\"]\n\
         [[bridges]]\nname = \"kwsbr2\"\naddresses = [\"10.30.0.1/24\"]\n",
    )
    .expect("valid");
    let net = ns.enter(LinuxHostNetwork::new).expect("backend");
    let rt = rt();
    let report = rt.block_on(net.apply(&two)).expect("apply");
    assert_eq!((report.links_changed, report.addresses_changed), (2, 2));

    ns.run(["ip", "addr", "add", "10.99.0.1/24", "dev", "vmbr1"]);
    ns.run(["ip", "link", "set", "vmbr1", "down"]);
    let report = rt.block_on(net.apply(&two)).expect("repair");
    assert_eq!((report.links_changed, report.addresses_changed), (1, 1), "{report:?}");
    let brief = ns.run(["ip", "-4", "-br", "addr", "show", "vmbr1"]);
    assert!(brief.contains("192.168.69.1/29") && !brief.contains("10.99.0.1"), "{brief}");
    assert!(ns.run(["ip", "link", "show", "vmbr1"]).contains(",UP"), "vmbr1 must be up again");

    let one = HostNetState::from_toml(
        "[[bridges]]\nname = \"vmbr1\"\naddresses = [\"192.168.70.1/29\"]\n",
    )
    .expect("valid");
    let report = rt.block_on(net.apply(&one)).expect("change");
    assert_eq!((report.links_changed, report.addresses_changed), (1, 2), "{report:?}");
    let links = ns.run(["ip", "-br", "link"]);
    assert!(!links.contains("kwsbr2"), "a bridge no longer declared must go:\n{links}");
    assert!(links.contains("other0"), "a link kws does not own must stay:\n{links}");
    let brief = ns.run(["ip", "-4", "-br", "addr", "show", "vmbr1"]);
    assert!(brief.contains("192.168.70.1/29") && !brief.contains("192.168.69.1"), "{brief}");
    rt.block_on(net.teardown()).expect("teardown");
    assert!(ns.run(["ip", "-br", "link"]).contains("other0"));
}

/// A hand edit inside kws's table is undone by the next apply, while a change elsewhere in the
/// ruleset (a new generation, same kws table) leaves the table as it is.
#[test]
fn a_hand_edit_of_the_kws_table_is_undone() {
    let Some(ns) = kws_testenv::Netns::new() else { return };
    let state = HostNetState::from_toml(include_str!("../data/hand_setup.toml")).expect("valid");
    let net = ns.enter(LinuxHostNetwork::new).expect("backend");
    let rt = rt();
    rt.block_on(net.apply(&state)).expect("apply");
    let listing = || ns.run(["nft", "list", "table", "inet", "kws"]);
    let original = listing();

    ns.run(["nft", "add", "table", "ip", "elsewhere"]);
    let report = rt.block_on(net.apply(&state)).expect("apply after a foreign change");
    assert!(report.changed_nothing(), "{report:?}");

    ns.run(["nft", "flush", "chain", "inet", "kws", "forward"]);
    ns.run(["nft", "delete", "element", "inet", "kws", "dnat4_any", "{ tcp . 443 }"]);
    assert_ne!(listing(), original);
    let report = rt.block_on(net.apply(&state)).expect("repair");
    assert!(report.netfilter_replaced);
    assert_eq!(listing(), original);
    assert!(ns.run(["nft", "list", "tables"]).contains("table ip elsewhere"));
}

/// Teardown keeps going after an error and returns every error it met: a link marked as kws's
/// that the kernel refuses to delete (`lo`) does not stop the table and the bridge from going.
#[test]
fn teardown_keeps_going_and_returns_every_error() {
    let Some(ns) = kws_testenv::Netns::new() else { return };
    let state = HostNetState::from_toml(include_str!("../data/hand_setup.toml")).expect("valid");
    let net = ns.enter(LinuxHostNetwork::new).expect("backend");
    let rt = rt();
    rt.block_on(net.apply(&state)).expect("apply");
    ns.run(["ip", "link", "set", "lo", "alias", "kws-hostnet"]);
    let errors = rt.block_on(net.teardown()).expect_err("deleting lo must fail");
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert!(errors.to_string().contains("delete lo"), "{errors}");
    assert!(!ns.run(["nft", "list", "ruleset"]).contains("kws"), "the table must still go");
    assert!(!ns.run(["ip", "-br", "link"]).contains("vmbr1"), "the bridge must still go");
}

/// With a cache file, a restarted process applying the same state changes nothing (and still
/// repairs a table that was edited while it was away).
#[test]
fn a_restarted_process_recognises_its_own_table() {
    let Some(ns) = kws_testenv::Netns::new() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("table.json");
    let state = HostNetState::from_toml(include_str!("../data/hand_setup.toml")).expect("valid");
    let rt = rt();
    let first = ns.enter(|| LinuxHostNetwork::with_cache_file(&file)).expect("backend");
    assert!(rt.block_on(first.apply(&state)).expect("apply").netfilter_replaced);
    drop(first);
    let ruleset = ns.run(["nft", "list", "ruleset"]);

    let second = ns.enter(|| LinuxHostNetwork::with_cache_file(&file)).expect("backend");
    let report = rt.block_on(second.apply(&state)).expect("apply after a restart");
    assert!(report.changed_nothing(), "{report:?}");
    assert_eq!(ns.run(["nft", "list", "ruleset"]), ruleset);
    drop(second);

    ns.run(["nft", "flush", "chain", "inet", "kws", "prerouting"]);
    let third = ns.enter(|| LinuxHostNetwork::with_cache_file(&file)).expect("backend");
    assert!(rt.block_on(third.apply(&state)).expect("repair").netfilter_replaced);
    assert_eq!(ns.run(["nft", "list", "ruleset"]), ruleset);
    rt.block_on(third.teardown()).expect("teardown");
    assert!(!file.exists(), "teardown removes the cache file");
}

/// Isolated bridges: one bridge reads back too (a one-element set); a hand edit of either set
/// is undone by the next apply; without the rule that uses it, the set is not read as
/// isolation (it isolates nothing).
#[test]
fn isolated_bridges_are_read_back_and_repaired() {
    let Some(ns) = kws_testenv::Netns::new() else { return };
    let net = ns.enter(LinuxHostNetwork::new).expect("backend");
    let rt = rt();
    let one = HostNetState::from_toml("isolated_bridges = [\"kwsb0a290100\"]").expect("valid");
    rt.block_on(kws_hostnet::testkit::apply_read_reapply_teardown(&net, &one));
    let two = HostNetState::from_toml("isolated_bridges = [\"kwsb0a290200\", \"kwsb0a290100\"]")
        .expect("valid");
    rt.block_on(net.apply(&two)).expect("apply");
    let listing = || ns.run(["nft", "list", "table", "inet", "kws"]);
    let original = listing();
    let self_pair = "{ \"kwsb0a290100\" . \"kwsb0a290100\" }";
    ns.run(["nft", "delete", "element", "inet", "kws", "isolated_bridge_self", self_pair]);
    assert_ne!(listing(), original);
    assert!(rt.block_on(net.apply(&two)).expect("repair").netfilter_replaced);
    assert_eq!(listing(), original);

    ns.run(["nft", "flush", "chain", "inet", "kws", "forward"]);
    let back = rt.block_on(net.current()).expect("current");
    assert!(back.isolated_bridges.is_empty(), "a set without its rule isolates nothing");
    assert!(rt.block_on(net.apply(&two)).expect("repair").netfilter_replaced);
    let back = rt.block_on(net.current()).expect("current");
    assert_eq!(kws_hostnet::testkit::normalized(&back), kws_hostnet::testkit::normalized(&two));
    rt.block_on(net.teardown()).expect("teardown");
    assert!(rt.block_on(net.current()).expect("current").isolated_bridges.is_empty());
}
