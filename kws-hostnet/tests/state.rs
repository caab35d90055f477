//! Bad input: each refused desired state gets a typed error naming the problem, before any
//! backend sees it. Also the state file round trip.

use kws_core::{IfName, Rule};
use kws_hostnet::{HostNetSpec, HostNetState, Port, Protocol, StateError};

fn spec(text: &str) -> HostNetSpec {
    toml::from_str(text).expect("spec syntax")
}

const BASE: &str = r#"
[[bridges]]
name = "vmbr1"
addresses = ["192.168.69.1/29"]
"#;

fn forward(proto: &str, ext: u32, dest: &str, iif: Option<&str>) -> String {
    let iif = iif.map(|i| format!("in_interface = \"{i}\"\n")).unwrap_or_default();
    format!(
        "[[port_forwards]]\nprotocol = \"{proto}\"\n{iif}external_port = {ext}\ndestination = \"{dest}\"\ndestination_port = 443\n"
    )
}

#[test]
fn overlapping_subnets_are_refused() {
    let text = format!("{BASE}[[bridges]]\nname = \"vmbr2\"\naddresses = [\"192.168.69.5/30\"]\n");
    assert_eq!(
        HostNetState::new(spec(&text)),
        Err(StateError::OverlappingSubnets {
            first: "192.168.69.0/29".parse().expect("net"),
            second: "192.168.69.4/30".parse().expect("net"),
        })
    );
    let text = format!("{BASE}[[bridges]]\nname = \"vmbr2\"\naddresses = [\"192.168.0.1/16\"]\n");
    assert!(matches!(HostNetState::new(spec(&text)), Err(StateError::OverlappingSubnets { .. })));
}

#[test]
fn bad_interface_names_are_refused_with_the_rule_they_break() {
    let long = IfName::parse("a-very-long-bridge-name").expect_err("too long");
    assert_eq!(long.rule, Rule::TooLong { len: 23, max: 15 });
    for bad in ["vm br", "br;rm", "br$x", "br`x`", "br\"", "br\n", "br/0", "", ".."] {
        let err = IfName::parse(bad).expect_err(bad);
        let as_state: StateError = err.into();
        assert!(matches!(as_state, StateError::InterfaceName(_)), "{bad:?}");
    }
    // Through a state file, the same name is refused before anything else happens.
    let text = BASE.replace("vmbr1", "vmbr1;reboot");
    assert!(toml::from_str::<HostNetSpec>(&text).is_err());
    assert!(HostNetState::from_toml(&text).is_err());
}

#[test]
fn ports_outside_1_to_65535_are_refused() {
    assert_eq!(Port::new(0), Err(StateError::PortOutOfRange { value: 0 }));
    assert_eq!(Port::new(65_536), Err(StateError::PortOutOfRange { value: 65_536 }));
    assert_eq!(Port::try_from(u32::MAX), Err(StateError::PortOutOfRange { value: u32::MAX }));
    assert_eq!(Port::new(65_535).map(Port::get), Ok(65_535));
    assert_eq!(Port::new(1).map(Port::get), Ok(1));
    for bad in [0, 65_536, 70_000] {
        let text = format!("{BASE}{}", forward("tcp", bad, "192.168.69.2", None));
        let err = HostNetState::from_toml(&text).expect_err("bad port");
        assert!(err.to_string().contains(&format!("port {bad} is outside 1..=65535")), "{err}");
    }
}

#[test]
fn a_destination_outside_every_managed_subnet_is_refused() {
    let text = format!("{BASE}{}", forward("udp", 51820, "10.0.0.2", None));
    assert_eq!(
        HostNetState::new(spec(&text)),
        Err(StateError::DestinationOutsideSubnets {
            protocol: Protocol::Udp,
            port: 51820,
            destination: "10.0.0.2".parse().expect("ip"),
        })
    );
}

#[test]
fn a_duplicate_external_port_is_refused() {
    let dup = |a: Option<&str>, b: Option<&str>| {
        let text = format!(
            "{BASE}{}{}",
            forward("tcp", 443, "192.168.69.2", a),
            forward("tcp", 443, "192.168.69.3", b)
        );
        HostNetState::new(spec(&text))
    };
    let refused = Err(StateError::DuplicateExternalPort { protocol: Protocol::Tcp, port: 443 });
    assert_eq!(dup(None, None), refused);
    assert_eq!(dup(Some("eth0"), None), refused);
    assert_eq!(dup(Some("eth0"), Some("eth0")), refused);
    assert!(dup(Some("eth0"), Some("eth1")).is_ok(), "different uplinks may reuse a port");
    let text = format!(
        "{BASE}{}{}",
        forward("tcp", 443, "192.168.69.2", None),
        forward("udp", 443, "192.168.69.2", None)
    );
    assert!(HostNetState::new(spec(&text)).is_ok(), "tcp and udp 443 are different ports");
    let dual = BASE.replace("\"192.168.69.1/29\"", "\"192.168.69.1/29\", \"fd00:69::1/64\"");
    let text = format!(
        "{dual}{}{}",
        forward("tcp", 443, "192.168.69.2", None),
        forward("tcp", 443, "fd00:69::2", None)
    );
    assert!(HostNetState::new(spec(&text)).is_ok(), "IPv4 and IPv6 443 are different ports");
}

#[test]
fn duplicates_and_network_addresses_are_refused() {
    let twice = format!("{BASE}{BASE}");
    assert!(matches!(HostNetState::new(spec(&twice)), Err(StateError::DuplicateBridge { .. })));
    let net = BASE.replace("192.168.69.1/29", "192.168.69.0/29");
    assert!(matches!(HostNetState::new(spec(&net)), Err(StateError::NetworkAddress { .. })));
    let peers = "[isolation]\ninterface = \"wg0\"\n[[isolation.peers]]\naddress = \"10.8.0.2\"\n[[isolation.peers]]\naddress = \"10.8.0.2\"\n";
    assert!(matches!(HostNetState::new(spec(peers)), Err(StateError::DuplicatePeer { .. })));
}

#[test]
fn the_state_file_round_trips_and_is_validated_on_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = HostNetState::from_toml(include_str!("../data/hand_setup.toml")).expect("valid");
    for name in ["state.toml", "state.json"] {
        let path = dir.path().join(name);
        state.save(&path).expect("save");
        assert_eq!(HostNetState::load(&path).expect("load"), state);
    }
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, format!("{BASE}{}", forward("tcp", 443, "10.9.9.9", None)))
        .expect("write");
    assert!(matches!(HostNetState::load(&bad), Err(StateError::DestinationOutsideSubnets { .. })));
    let missing = dir.path().join("missing.toml");
    assert!(matches!(HostNetState::load(&missing), Err(StateError::File { .. })));
}

#[test]
fn isolated_bridges_are_validated() {
    let listed = |names: &str, extra: &str| {
        HostNetState::from_toml(&format!("isolated_bridges = [{names}]\n{extra}{BASE}"))
    };
    assert!(listed("\"kwsb0a290100\", \"kwsb0a290200\", \"vmbr1\"", "").is_ok());
    assert_eq!(
        listed("\"kwsb0a290100\", \"kwsb0a290200\", \"kwsb0a290100\"", ""),
        Err(StateError::DuplicateIsolatedBridge { name: "kwsb0a290100".parse().expect("name") })
    );
    // A bad name is refused with the rule it breaks, before validation.
    for bad in ["\"kwsb 0a29\"", "\"kwsb0a290100-too-long\"", "\"\"", "\"br;x\""] {
        let err = listed(bad, "").expect_err(bad);
        assert!(matches!(err, StateError::File { .. }), "{bad}: {err:?}");
        assert!(err.to_string().contains("isolated_bridges"), "{bad}: {err}");
    }
    let vpn = listed("\"wg0\"", "[isolation]\ninterface = \"wg0\"\n");
    assert!(
        matches!(vpn, Err(StateError::IsolatedBridgeConflict { ref name, .. }) if name.as_str() == "wg0"),
        "{vpn:?}"
    );
    let uplink =
        format!("{BASE}[[masquerade]]\nsource = \"192.168.69.0/29\"\nout_interface = \"eth0\"\n");
    let spec =
        HostNetSpec { isolated_bridges: vec!["eth0".parse().expect("name")], ..spec(&uplink) };
    let err = HostNetState::new(spec).expect_err("an uplink is not an owner bridge");
    assert!(err.to_string().contains("eth0") && err.to_string().contains("uplink"), "{err}");
}

#[test]
fn isolated_bridges_round_trip_through_the_state_file() {
    let text = format!("isolated_bridges = [\"kwsb0a290100\", \"kwsb0a290200\"]\n{BASE}");
    let state = HostNetState::from_toml(&text).expect("valid");
    assert_eq!(HostNetState::from_toml(&state.to_toml()).expect("toml"), state);
    let json: HostNetState = serde_json::from_str(&state.to_json()).expect("json");
    assert_eq!(json, state);
    // Absent when empty, so existing state files and their output stay as they were.
    let plain = HostNetState::from_toml(BASE).expect("valid");
    assert!(!plain.to_toml().contains("isolated_bridges"));
}
