//! The config file: the example parses as a whole, every bad value is one error naming its
//! section, key and value, and secrets are never shown.

use kws::platform::config::{ConfigError, PlatformConfig, ProxyConfig, StoreConfig};

fn refused(text: &str) -> ConfigError {
    PlatformConfig::parse(text, "test.toml").expect_err(text)
}

fn value_error(text: &str) -> (String, String, String) {
    match refused(text) {
        ConfigError::Value { section, key, value, .. } => (section, key, value),
        other => panic!("{text}: {other}"),
    }
}

const MINIMAL: &str = "[platform]\ndomain = \"kws.example.org\"\n";

#[test]
fn the_example_parses_and_names_its_backends() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/kws.example.toml"))
        .expect("example");
    let config = PlatformConfig::parse(&text, "kws.example.toml").expect("the example is valid");
    assert_eq!(config.platform.domain.to_string(), "kws.example.org");
    assert!(matches!(config.store, StoreConfig::Postgres(_)));
    assert!(matches!(config.proxy, ProxyConfig::Nginx { .. }));
    assert_eq!(config.quotas.cpu_millis, Some(4000));
    assert_eq!(config.operations.lease.as_secs(), 10);
    let shown = format!("{config:?}");
    assert!(!shown.contains("hunter2"));
}

#[test]
fn a_minimal_file_is_the_embedded_defaults_but_the_domain() {
    let config = PlatformConfig::parse(MINIMAL, "m.toml").expect("minimal");
    assert!(matches!(config.store, StoreConfig::Memory));
    assert!(matches!(config.proxy, ProxyConfig::Memory));
    assert_eq!(config.runtime.backend, "docker");
}

#[test]
fn every_bad_value_names_its_section_key_and_value() {
    let cases: &[(&str, (&str, &str, &str))] = &[
        ("[platform]\ndomain = \"a..b\"\n", ("platform", "domain", "\"a..b\"")),
        ("[platform]\n", ("platform", "domain", "(missing)")),
        ("[platform]\ndomain = 5\n", ("platform", "domain", "5")),
        ("[platform]\ndomain = \"x.org\"\ndomian = \"y\"\n", ("platform", "domian", "\"y\"")),
        (
            "[platform]\ndomain = \"x.org\"\n[store]\nbackend = \"mysql\"\n",
            ("store", "backend", "\"mysql\""),
        ),
        (
            "[platform]\ndomain = \"x.org\"\n[store]\nbackend = \"postgres\"\n",
            ("store", "url", "(missing)"),
        ),
        (
            "[platform]\ndomain = \"x.org\"\n[vpn]\nsubnet = \"10.8.0.0/31\"\n",
            ("vpn", "subnet", "\"10.8.0.0/31\""),
        ),
        (
            "[platform]\ndomain = \"x.org\"\n[vpn]\ninterface = \"wg0; rm -rf /\"\n",
            ("vpn", "interface", "\"wg0; rm -rf /\""),
        ),
        (
            "[platform]\ndomain = \"x.org\"\n[runtime]\nide_port = 70000\n",
            ("runtime", "ide_port", "70000"),
        ),
        (
            "[platform]\ndomain = \"x.org\"\n[runtime]\nstop_timeout = \"10 parsecs\"\n",
            ("runtime", "stop_timeout", "\"10 parsecs\""),
        ),
        (
            "[platform]\ndomain = \"x.org\"\n[runtime]\ninstance_memory = \"lots\"\n",
            ("runtime", "instance_memory", "\"lots\""),
        ),
        (
            "[platform]\ndomain = \"x.org\"\n[proxy]\nbackend = \"nginx\"\n",
            ("proxy", "certificate", "(missing)"),
        ),
        (
            "[platform]\ndomain = \"x.org\"\n[quotas]\ninstances = -1\n",
            ("quotas", "instances", "-1"),
        ),
        (
            "[platform]\ndomain = \"x.org\"\n[operations]\nlease = \"1ms\"\n",
            ("operations", "lease", "1ms"),
        ),
        (
            "[platform]\ndomain = \"x.org\"\n[tls]\nacme_directory = \"https://a\"\n",
            ("tls", "dns_provider", "(missing)"),
        ),
        (
            "[platform]\ndomain = \"x.org\"\n[store]\nbackend = \"postgres\"\nurl = \"mysql://u:secret@h/d\"\n",
            ("store", "url", "(a URL, not shown)"),
        ),
        (
            "[platform]\ndomain = \"x.org\"\n[store]\nbackend = \"postgres\"\nurl = \"postgres://h/d\"\npassword_env = \"A\"\npassword_file = \"/f\"\n",
            ("store", "password_env", "(both)"),
        ),
        ("[platform]\ndomain = \"x.org\"\n[nonsense]\n", ("nonsense", "", "(section)")),
    ];
    for (text, (section, key, value)) in cases {
        let got = value_error(text);
        assert_eq!((got.0.as_str(), got.1.as_str()), (*section, *key), "{text}");
        assert!(got.2.contains(value), "{text}: value {:?} should show {value:?}", got.2);
    }
    // A URL with a password is never printed back.
    let err = refused(
        "[platform]\ndomain = \"x.org\"\n[store]\nbackend = \"postgres\"\nurl = \"mysql://u:secret@h/d\"\n",
    );
    assert!(!err.to_string().contains("secret"), "{err}");
}

#[test]
fn a_file_that_is_not_toml_says_where() {
    match refused("[platform\ndomain = 1") {
        ConfigError::Syntax { path, reason } => {
            assert_eq!(path, "test.toml");
            assert!(reason.contains("line 1"), "{reason}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn secrets_come_from_the_environment_or_a_file_and_are_never_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pw");
    std::fs::write(&file, "hunter2\n").expect("write");
    let text = format!(
        "{MINIMAL}[store]\nbackend = \"postgres\"\nurl = \"postgres://kws@127.0.0.1/kws\"\npassword_file = {:?}\n",
        file.display().to_string()
    );
    let config = PlatformConfig::parse(&text, "t.toml").expect("valid");
    let StoreConfig::Postgres(url) = &config.store else { panic!("postgres") };
    let secret = url.password.as_ref().expect("source").read().expect("read");
    assert_eq!(secret.expose(), "hunter2");
    assert!(!format!("{config:?} {secret:?}").contains("hunter2"), "Debug shows no secret");
    let missing = kws::platform::config::SecretSource::Env("KWS_TEST_NO_SUCH_VAR".into())
        .read()
        .expect_err("unset");
    assert!(missing.contains("KWS_TEST_NO_SUCH_VAR"), "{missing}");
}

#[tokio::test]
async fn an_embedded_config_builds_a_platform_without_any_service() {
    let config = PlatformConfig::embedded(false);
    let platform = config.build().await.expect("build");
    platform.start().await.expect("start");
    assert!(platform.runtime().is_ok(), "the in-memory runtime");
    assert!(platform.databases().is_err() && platform.exec().is_err());
}
