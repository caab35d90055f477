//! The plan backend: the hand setup renders to the commands that were typed by hand, and the
//! backend passes the conformance suite (directly and through `dyn HostNetwork`).

use std::sync::Arc;

use kws_hostnet::{HostNetState, HostNetwork, PlanHostNetwork, plan, testkit};

fn hand_setup() -> HostNetState {
    HostNetState::from_toml(include_str!("../data/hand_setup.toml")).expect("hand setup parses")
}

/// Every step of the hand setup appears, in the order the batch needs (NAT chains, then forward accepts).
#[test]
fn the_hand_setup_renders_to_what_was_done_by_hand() {
    let script = plan::render_apply(&hand_setup());
    let steps = [
        "ip link add name vmbr1 type bridge",
        "ip address replace 192.168.69.1/29 dev vmbr1",
        "sysctl -qw net.ipv4.ip_forward=1",
        "map dnat4_any {",
        "elements = { tcp . 443 : 192.168.69.2 . 443, udp . 51820 : 192.168.69.2 . 51820 }",
        "set accept4_any {",
        "elements = { 192.168.69.2 . tcp . 443, 192.168.69.2 . udp . 51820 }",
        "meta l4proto { tcp, udp } dnat ip to meta l4proto . th dport map @dnat4_any",
        "ip saddr 192.168.69.0/29 oifname \"eth0\" masquerade",
        "ct status dnat ip daddr . meta l4proto . th dport @accept4_any ct mark set ct mark | 0x00100000 accept",
        "iptables -w -I DOCKER-USER 1 -m connmark --mark 0x100000/0x100000",
    ];
    let mut from = 0;
    for step in steps {
        let at = script[from..].find(step).unwrap_or_else(|| panic!("missing {step:?}:\n{script}"));
        from += at + step.len();
    }
    // Only kws's table is named in the netfilter batch.
    let batch = plan::render_batch(&hand_setup());
    for line in batch.lines().filter(|l| l.contains("table")) {
        assert!(line.ends_with("table inet kws") || line == "table inet kws {", "{line}");
    }
}

#[test]
fn teardown_script_removes_what_apply_made() {
    let script = plan::render_teardown(&hand_setup());
    assert!(script.contains("nft delete table inet kws"));
    assert!(script.contains("ip link delete dev vmbr1 type bridge"));
    assert!(script.contains("iptables -w -D DOCKER-USER -m connmark"));
}

#[tokio::test]
async fn plan_backend_changes_nothing_and_records_scripts() {
    let net = PlanHostNetwork::new();
    let report = net.apply(&hand_setup()).await.expect("apply");
    assert_eq!(report.links_changed, 1);
    assert_eq!(report.sysctls_written, 1);
    assert!(net.apply(&hand_setup()).await.expect("again").changed_nothing());
    assert_eq!(net.scripts(), vec![plan::render_apply(&hand_setup())]);
}

#[tokio::test]
async fn plan_backend_passes_the_conformance_suite() {
    testkit::apply_read_reapply_teardown(&PlanHostNetwork::new(), &hand_setup()).await;
    let boxed: Box<dyn HostNetwork> = Box::new(PlanHostNetwork::new());
    testkit::apply_read_reapply_teardown(boxed.as_ref(), &hand_setup()).await;
    let shared: Arc<dyn HostNetwork> = Arc::new(PlanHostNetwork::new());
    let smaller = HostNetState::from_toml(
        "[[bridges]]\nname = \"vmbr2\"\naddresses = [\"10.1.0.1/24\", \"fd00:1::1/64\"]\n",
    )
    .expect("valid");
    testkit::apply_converges_on_change(shared.as_ref(), &hand_setup(), &smaller).await;
}

/// Isolated bridges render as two sets and ONE drop rule (whatever their number), placed first
/// in the forward chain: before the accept of kws's marked flows and every other accept.
#[test]
fn isolated_bridges_render_as_sets_and_one_rule_before_every_accept() {
    let mut spec = hand_setup().spec().clone();
    spec.isolated_bridges =
        (1..=300).map(|i| format!("kwsb0a29{i:04x}").parse().expect("name")).collect();
    let state = HostNetState::new(spec).expect("valid");
    let batch = plan::render_batch(&state);
    assert!(batch.contains(
        "\tset isolated_bridges {\n\t\ttype ifname\n\t\telements = { \"kwsb0a290001\", \"kwsb0a290002\", "
    ));
    assert!(batch.contains("\t\ttype ifname . ifname\n\t\telements = { \"kwsb0a290001\" . \"kwsb0a290001\", \"kwsb0a290002\" . \"kwsb0a290002\", "));
    assert!(batch.contains("\"kwsb0a29012c\" . \"kwsb0a29012c\" }"), "all 300 self pairs");
    let rule = "iifname @isolated_bridges oifname @isolated_bridges iifname . oifname != @isolated_bridge_self drop comment \"kws bridges\"";
    assert_eq!(batch.matches(rule).count(), 1, "{batch}");
    assert_eq!(batch.matches(" drop").count(), 1, "one drop rule for 300 bridges");
    let forward = &batch[batch.find("chain forward {").expect("forward chain")..];
    let first_rule = forward.lines().nth(2).expect("first rule");
    assert_eq!(first_rule.trim(), rule, "the drop must precede every accept:\n{forward}");
    assert!(forward.find(rule) < forward.find("kws flows"));
    // The plan script carries the same batch.
    assert!(plan::render_apply(&state).contains(rule));
    // Without the field nothing of it is rendered: the table is as before.
    let plain = plan::render_batch(&hand_setup());
    assert!(!plain.contains("isolated_bridge") && !plain.contains("kws bridges"));
}

#[tokio::test]
async fn plan_backend_applies_and_removes_isolated_bridges() {
    let mut spec = hand_setup().spec().clone();
    spec.isolated_bridges = vec!["kwsb0a290100".parse().expect("name")];
    let isolated = HostNetState::new(spec).expect("valid");
    testkit::apply_read_reapply_teardown(&PlanHostNetwork::new(), &isolated).await;
    let net = PlanHostNetwork::new();
    testkit::apply_converges_on_change(&net, &isolated, &hand_setup()).await;
    let scripts = net.scripts();
    assert!(scripts[0].contains("kws bridges") && !scripts[1].contains("kws bridges"));
}
