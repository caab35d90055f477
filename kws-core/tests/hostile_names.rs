//! Hostile strings are refused with errors that say why; accepted values are safe verbatim in
//! every place a name ends up.

use kws_core::{DnsLabel, Domain, Hostname, IfName, InstanceId, JobId, OwnerId, Rule};
use proptest::prelude::*;

/// Whether a refusal broke the expected rule.
type ExpectedRule = fn(&Rule) -> bool;

#[test]
fn hostile_labels_are_refused_with_the_rule_they_broke() {
    let long = "a".repeat(64);
    let cases: &[(&str, ExpectedRule)] = &[
        ("a;b", |r| matches!(r, Rule::ForbiddenChar { ch: ';', at: 1, .. })),
        ("x..y", |r| matches!(r, Rule::ForbiddenChar { ch: '.', at: 1, .. })),
        ("-a", |r| matches!(r, Rule::EdgeHyphen)),
        ("a-", |r| matches!(r, Rule::EdgeHyphen)),
        (&long, |r| matches!(r, Rule::TooLong { len: 64, max: 63 })),
        ("a\nb", |r| matches!(r, Rule::ForbiddenChar { ch: '\n', .. })),
        ("ü", |r| matches!(r, Rule::ForbiddenChar { ch: 'ü', at: 0, .. })),
        ("", |r| matches!(r, Rule::Empty)),
        ("a b", |r| matches!(r, Rule::ForbiddenChar { ch: ' ', .. })),
        ("x\"; DROP ROLE postgres; --", |r| matches!(r, Rule::ForbiddenChar { ch: '"', .. })),
        ("a\0", |r| matches!(r, Rule::ForbiddenChar { ch: '\0', .. })),
        ("$(id)", |r| matches!(r, Rule::ForbiddenChar { ch: '$', .. })),
        ("../etc", |r| matches!(r, Rule::ForbiddenChar { ch: '.', .. })),
        ("a/b", |r| matches!(r, Rule::ForbiddenChar { ch: '/', .. })),
        ("a_b", |r| matches!(r, Rule::ForbiddenChar { ch: '_', .. })),
    ];
    for (raw, expected) in cases {
        let err = DnsLabel::parse(raw).expect_err(raw);
        assert!(expected(&err.rule), "{raw:?}: unexpected rule {:?}", err.rule);
        let msg = err.to_string();
        assert!(msg.starts_with("invalid DNS label \""), "{msg}");
        assert!(!msg.contains('\n') && !msg.contains('\0'), "message must be escaped: {msg:?}");
    }
}

#[test]
fn errors_name_the_value_escaped_and_the_rule() {
    let err = DnsLabel::parse("a\nb").expect_err("newline");
    assert_eq!(
        err.to_string(),
        "invalid DNS label \"a\\nb\": character '\\n' at byte 1 is not allowed (allowed: ASCII letters, digits and '-')"
    );
    let err = DnsLabel::parse(&"b".repeat(64)).expect_err("long");
    assert!(err.to_string().ends_with("is 64 bytes long, at most 63 allowed"), "{err}");
    let err = DnsLabel::parse(&"c".repeat(500)).expect_err("very long");
    assert!(err.value.chars().count() <= 81, "the shown value is cut: {}", err.value);
}

#[test]
fn labels_are_lowercased_and_keep_their_shape() {
    assert_eq!(DnsLabel::parse("App-1").map(|l| l.to_string()), Ok("app-1".to_owned()));
    assert!(DnsLabel::parse("0").is_ok());
    assert!(DnsLabel::parse(&"z".repeat(63)).is_ok());
    let owner = OwnerId::parse("Alice").expect("owner");
    assert_eq!(owner.as_str(), "alice");
    let err = InstanceId::parse("a;b").expect_err("instance");
    assert!(err.to_string().starts_with("invalid instance id"), "{err}");
}

#[test]
fn domains_and_hostnames() {
    let domain = Domain::parse("KwsCloud.in").expect("domain");
    assert_eq!(domain.as_str(), "kwscloud.in");
    for bad in ["", ".", "a..b", ".a", "a.", "a;b.c", "-a.b", "a b.c"] {
        assert!(Domain::parse(bad).is_err(), "{bad:?} accepted");
    }
    let long = vec!["a".repeat(63); 4].join(".");
    assert!(matches!(Domain::parse(&long).map_err(|e| e.rule), Err(Rule::TooLong { .. })));

    let host = Hostname::parse_under("App1.kwscloud.in", &domain).expect("host");
    assert_eq!(host.to_string(), "app1.kwscloud.in");
    assert_eq!(host.label().as_str(), "app1");
    let outside = Hostname::parse_under("app1.example.com", &domain).expect_err("outside");
    assert!(matches!(outside.rule, Rule::OutsideDomain { .. }), "{outside}");
    let deep = Hostname::parse_under("a.b.kwscloud.in", &domain).expect_err("deep");
    assert_eq!(deep.rule, Rule::NotOneLabel);
    assert!(Hostname::parse_under("evilkwscloud.in", &domain).is_err());
    assert!(Hostname::parse_under("kwscloud.in", &domain).is_err());
    assert_eq!(Hostname::parse("x.kwscloud.in").map(|h| h.domain().clone()), Ok(domain));
}

#[test]
fn interface_names() {
    for good in ["wg0", "kws-br.1", "vmbr1", "a_b", "x23456789012345"] {
        assert!(IfName::parse(good).is_ok(), "{good:?} refused");
    }
    for bad in ["", ".", "..", "a/b", "a b", "a\0", "x234567890123456", "eth0:1", "a\"b", "ü"] {
        assert!(IfName::parse(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn job_ids_are_unique_sortable_and_round_trip() {
    let ids: Vec<JobId> = (0..10_000).map(|_| JobId::new()).collect();
    for pair in ids.windows(2) {
        assert!(pair[0] < pair[1], "ids must strictly increase");
        assert!(pair[0].to_string() < pair[1].to_string(), "string forms must sort too");
    }
    let id = ids[0];
    assert_eq!(JobId::parse(&id.to_string()), Ok(id));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    assert!(now_ms.abs_diff(id.created_ms()) < 60_000);
    for bad in ["", "xyz", "0123456789ABCDEF0123456789abcdef", &"0".repeat(33)] {
        assert!(JobId::parse(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn serde_refuses_invalid_values() {
    let ok: DnsLabel = serde_json::from_str("\"Web\"").expect("valid");
    assert_eq!(ok.as_str(), "web");
    assert!(serde_json::from_str::<DnsLabel>("\"a;b\"").is_err());
    assert!(serde_json::from_str::<IfName>("\"a b\"").is_err());
    let host: Hostname = serde_json::from_str("\"a.b.c\"").expect("host");
    assert_eq!(serde_json::to_string(&host).ok().as_deref(), Some("\"a.b.c\""));
}

/// Safe verbatim in a file name (one path component).
fn file_name_safe(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0'])
}

/// Safe in an nginx `server_name` directive without quoting.
fn nginx_safe(s: &str) -> bool {
    !s.chars().any(|c| c.is_whitespace() || ";{}\"'$\\#~*^".contains(c) || c.is_control())
}

/// Matches Docker's container-name rule `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (single characters too).
fn docker_name_safe(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Safe inside a double-quoted nftables comment (no quote, backslash or line break).
fn nft_comment_safe(s: &str) -> bool {
    !s.chars().any(|c| c == '"' || c == '\\' || c.is_control())
}

/// Safe inside a double-quoted SQL identifier (no quote, no NUL, at most 63 bytes).
fn sql_ident_safe(s: &str) -> bool {
    !s.contains(['"', '\0']) && s.len() <= 63
}

const FORBIDDEN: &[char] = &[
    ';', '$', '`', '"', '\'', '\n', '\r', '\t', ' ', '.', '/', '\\', '\0', '{', '}', '#', '*', '_',
    'ü', '@', ':',
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn accepted_labels_are_safe_everywhere(raw in "\\PC{0,70}|[a-zA-Z0-9-]{1,70}") {
        if let Ok(label) = DnsLabel::parse(&raw) {
            let s = label.as_str();
            prop_assert!(file_name_safe(s));
            prop_assert!(nginx_safe(s));
            prop_assert!(docker_name_safe(s));
            prop_assert!(nft_comment_safe(s));
            prop_assert!(sql_ident_safe(s));
            prop_assert_eq!(s, raw.to_ascii_lowercase());
        }
    }

    #[test]
    fn accepted_interface_names_are_safe(raw in "\\PC{0,20}|[a-zA-Z0-9_.-]{1,20}") {
        if let Ok(name) = IfName::parse(&raw) {
            let s = name.as_str();
            prop_assert!(file_name_safe(s) && nginx_safe(s) && nft_comment_safe(s));
            prop_assert!(s.len() <= 15);
        }
    }

    #[test]
    fn any_forbidden_character_is_refused(
        prefix in "[a-z0-9]{0,20}",
        suffix in "[a-z0-9]{0,20}",
        bad in proptest::sample::select(FORBIDDEN),
    ) {
        let raw = format!("{prefix}{bad}{suffix}");
        let err = DnsLabel::parse(&raw).expect_err("forbidden char accepted");
        let is_forbidden = matches!(err.rule, Rule::ForbiddenChar { ch, .. } if ch == bad);
        prop_assert!(is_forbidden, "{:?}", err.rule);
    }

    #[test]
    fn too_long_is_refused(raw in "[a-z0-9]{64,200}") {
        let label_too_long = matches!(DnsLabel::parse(&raw).map_err(|e| e.rule), Err(Rule::TooLong { .. }));
        prop_assert!(label_too_long);
        let ifname_too_long = matches!(IfName::parse(&raw).map_err(|e| e.rule), Err(Rule::TooLong { .. }));
        prop_assert!(ifname_too_long);
    }

    #[test]
    fn hostnames_under_a_domain_round_trip(label in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?") {
        let domain = Domain::parse("kwscloud.in").expect("domain");
        let host = Hostname::parse_under(&format!("{label}.kwscloud.in"), &domain).expect("host");
        prop_assert_eq!(host.label().as_str(), label.as_str());
        prop_assert!(nginx_safe(&host.to_string()));
    }
}
