//! Pure checks of specs, limits, redeploy changes and configuration (no engine).

use kws_core::{InstanceId, OwnerId};
use kws_runtime::{
    Error, Forbidden, ImageRef, InstanceSpec, Mount, MountSource, Redeploy, Resources,
};

fn spec() -> InstanceSpec {
    InstanceSpec::new(
        OwnerId::parse("alice").expect("owner"),
        InstanceId::parse("ide").expect("name"),
    )
}

const MAX: Resources = Resources { memory_bytes: 8 << 30, cpus: 4.0, pids: 4096 };

#[test]
fn limits_at_and_beyond_their_bounds() {
    let ok = |memory_bytes, cpus, pids| Resources { memory_bytes, cpus, pids }.validate(&MAX);
    assert!(ok(Resources::MIN_MEMORY_BYTES, Resources::MIN_CPUS, Resources::MIN_PIDS).is_ok());
    assert!(ok(MAX.memory_bytes, MAX.cpus, MAX.pids).is_ok());
    let field = |r: Result<(), Error>| match r {
        Err(Error::InvalidSpec { field, .. }) => field,
        other => panic!("expected InvalidSpec, got {other:?}"),
    };
    assert_eq!(field(ok(Resources::MIN_MEMORY_BYTES - 1, 1.0, 64)), "resources.memory_bytes");
    assert_eq!(field(ok(MAX.memory_bytes + 1, 1.0, 64)), "resources.memory_bytes");
    assert_eq!(field(ok(i64::MIN, 1.0, 64)), "resources.memory_bytes");
    assert_eq!(field(ok(1 << 30, 0.0, 64)), "resources.cpus");
    assert_eq!(field(ok(1 << 30, f64::INFINITY, 64)), "resources.cpus");
    assert_eq!(field(ok(1 << 30, 4.01, 64)), "resources.cpus");
    assert_eq!(field(ok(1 << 30, 1.0, 0)), "resources.pids");
    assert_eq!(field(ok(1 << 30, 1.0, -1)), "resources.pids");
    assert_eq!(field(ok(1 << 30, 1.0, 4097)), "resources.pids");
}

#[test]
fn refusals_name_what_was_asked() {
    let mut s = spec();
    s.mounts.push(Mount { target: "/data".into(), source: MountSource::HostPath("/etc".into()) });
    let e = s.validate(&MAX).expect_err("host mount");
    assert!(matches!(&e, Error::Forbidden(Forbidden::HostPathMount(p)) if p == "/etc"), "{e}");
    assert!(e.to_string().contains("/etc"));
    let mut s = spec();
    s.privileged = true;
    s.host_network = true;
    assert!(matches!(s.validate(&MAX), Err(Error::Forbidden(Forbidden::Privileged))));
    let mut s = spec();
    s.env.insert("PATH=/x; rm".into(), "v".into());
    let e = s.validate(&MAX).expect_err("env name");
    assert!(e.to_string().contains("PATH=/x; rm"), "{e}");
}

#[test]
fn mounts_and_ports() {
    let tmpfs = |target: &str, size_bytes| Mount {
        target: target.into(),
        source: MountSource::Tmpfs { size_bytes },
    };
    for (mount, good) in [
        (tmpfs("/cache", 1 << 20), true),
        (tmpfs("relative", 1 << 20), false),
        (tmpfs("/", 1 << 20), false),
        (tmpfs("/a/./b", 1 << 20), false),
        (tmpfs("/a,b", 1 << 20), false),
        (tmpfs("/workspace", 1 << 20), false),
        (tmpfs("/workspace/", 1 << 20), false),
        (tmpfs("/cache", -1), false),
        (tmpfs("/cache", 1 << 40), false),
    ] {
        let mut s = spec();
        s.mounts.push(mount.clone());
        assert_eq!(s.validate(&MAX).is_ok(), good, "{mount:?}");
    }
    let mut s = spec();
    s.ide_port = Some(8080);
    s.app_ports = vec![3000, 8080];
    assert!(s.validate(&MAX).is_err(), "the IDE port is not an app port");
    s.app_ports = vec![3000, 5000];
    assert!(s.validate(&MAX).is_ok());
}

#[test]
fn redeploy_changes_only_what_it_names() {
    let mut s = spec();
    s.env.insert("A".into(), "1".into());
    s.command = Some(vec!["sh".into()]);
    let same = Redeploy::default().apply(s.clone());
    assert_eq!(same, s);
    let image = ImageRef::parse("kws-test/python3:1").expect("image");
    let change = Redeploy { image: Some(image.clone()), env: None, command: Some(None) };
    let changed = change.apply(s.clone());
    assert_eq!(changed.image, Some(image));
    assert_eq!(changed.env, s.env, "env kept");
    assert_eq!(changed.command, None, "the image's command");
    assert_eq!((changed.owner, changed.name), (s.owner, s.name), "identity kept");
}

#[test]
fn specs_round_trip_through_json() {
    let mut s = spec();
    s.resources = Some(Resources { memory_bytes: 1 << 30, cpus: 1.5, pids: 100 });
    s.app_ports = vec![3000];
    let json = serde_json::to_string(&s).expect("json");
    assert_eq!(serde_json::from_str::<InstanceSpec>(&json).expect("parse"), s);
    let minimal: InstanceSpec =
        serde_json::from_str(r#"{"owner":"Bob","name":"web"}"#).expect("parse");
    assert_eq!(minimal.owner.as_str(), "bob", "names are lowercased");
    let bad_image = r#"{"owner":"bob","name":"web","image":"x; rm -rf /"}"#;
    assert!(serde_json::from_str::<InstanceSpec>(bad_image).is_err());
}

#[cfg(feature = "docker")]
#[test]
fn configuration_is_checked() {
    use kws_runtime::docker::{DockerConfig, IdeConfig};
    let ide = IdeConfig { image: ImageRef::parse("ide:1").expect("image"), port: 8080 };
    assert!(DockerConfig::new(ide.clone()).validate().is_ok());
    let mut c = DockerConfig::new(ide.clone());
    c.owner_prefix_len = 8;
    assert!(c.validate().is_err(), "an owner subnet larger than the range");
    let mut c = DockerConfig::new(ide.clone());
    c.owner_prefix_len = 31;
    assert!(c.validate().is_err(), "an owner subnet too small for instances");
    let mut c = DockerConfig::new(ide.clone());
    c.extra_labels.insert("kws.managed".into(), "false".into());
    assert!(c.validate().is_err(), "the runtime's own labels are reserved");
    let mut c = DockerConfig::new(ide);
    c.extra_labels.insert("kws.test".into(), "1".into());
    assert!(c.validate().is_ok(), "test labels are allowed");
}

#[test]
fn health_checks_are_bounded() {
    use kws_runtime::HealthCheck;
    use std::time::Duration;
    let check = |command: Vec<&str>, interval_ms, timeout_ms, retries| {
        let mut s = spec();
        s.health_check = Some(HealthCheck {
            command: command.into_iter().map(String::from).collect(),
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(timeout_ms),
            retries,
        });
        s.validate(&MAX).map_err(|e| match e {
            Error::InvalidSpec { field, .. } => field,
            other => panic!("expected InvalidSpec, got {other:?}"),
        })
    };
    assert_eq!(check(vec!["true"], 1000, 1000, 3), Ok(()));
    assert_eq!(check(vec![], 1000, 1000, 3), Err("health_check.command"));
    assert_eq!(check(vec!["a\0"], 1000, 1000, 3), Err("health_check.command"));
    assert_eq!(check(vec!["true"], 99, 1000, 3), Err("health_check.interval"));
    assert_eq!(check(vec!["true"], 3_600_001, 1000, 3), Err("health_check.interval"));
    assert_eq!(check(vec!["true"], 1000, 600_001, 3), Err("health_check.timeout"));
    assert_eq!(check(vec!["true"], 1000, 1000, 0), Err("health_check.retries"));
    assert_eq!(check(vec!["true"], 1000, 1000, 101), Err("health_check.retries"));
}
