//! The conformance suite (feature `testkit`): `pub async fn` checks every `Runtime` backend's
//! tests call, once directly and once through `Arc<dyn Runtime>`.
//!
//! Each check takes a [`Fixture`] naming a fresh owner and an image with a POSIX shell, `sleep`
//! and `cat`; it removes what it made when it succeeds, and panics with a message on a breach.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kws_core::{InstanceId, OwnerId};

use crate::{
    Error, ExecRequest, ImageRef, InstanceKey, InstanceSpec, InstanceState, LogOptions, Redeploy,
    Resources, Runtime, VolumePolicy,
};

/// What the checks need from the backend's test.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// An owner no other test uses.
    pub owner: OwnerId,
    /// An image with `sh`, `sleep` and `cat` whose default command keeps running.
    pub image: ImageRef,
}

impl Fixture {
    /// A spec of instance `name` of the fixture's owner on the fixture's image.
    pub fn spec(&self, name: &str) -> InstanceSpec {
        let name = InstanceId::parse(name).unwrap_or_else(|e| panic!("instance name: {e}"));
        let mut spec = InstanceSpec::new(self.owner.clone(), name);
        spec.image = Some(self.image.clone());
        spec
    }

    /// The key of instance `name` of the fixture's owner.
    pub fn key(&self, name: &str) -> InstanceKey {
        let spec = self.spec(name);
        InstanceKey::new(spec.owner, spec.name)
    }
}

fn sh(script: &str) -> ExecRequest {
    ExecRequest::new(["sh", "-c", script])
}

/// Create, start (twice), list, stop (twice), start, restart, remove; the states on the way.
pub async fn lifecycle(rt: &dyn Runtime, fx: &Fixture) {
    let spec = fx.spec("life");
    let key = fx.key("life");
    let created = rt.create(spec.clone()).await.expect("create");
    assert_eq!(created.state, InstanceState::Created, "a new instance is created, not started");
    assert_eq!(created.key, key);
    assert!(
        matches!(rt.create(spec).await, Err(Error::AlreadyExists { .. })),
        "a second create of the same name is AlreadyExists"
    );
    rt.start(&key).await.expect("start");
    rt.start(&key).await.expect("start of a running instance succeeds");
    let running = rt.inspect(&key).await.expect("inspect");
    assert_eq!(running.state, InstanceState::Running);
    assert!(running.started_at.is_some(), "a running instance has a start time");
    assert_eq!(running.address, created.address, "the address is stable");
    let listed = rt.list(&fx.owner).await.expect("list");
    assert_eq!(listed.iter().map(|i| &i.key).collect::<Vec<_>>(), vec![&key]);
    rt.stop(&key, None).await.expect("stop");
    rt.stop(&key, None).await.expect("stop of a stopped instance succeeds");
    let stopped = rt.inspect(&key).await.expect("inspect");
    assert!(matches!(stopped.state, InstanceState::Exited { .. }), "{:?}", stopped.state);
    assert!(matches!(rt.exec(&key, sh("true")).await, Err(Error::NotRunning { .. })));
    assert!(matches!(rt.stats(&key).await, Err(Error::NotRunning { .. })));
    rt.start(&key).await.expect("start again");
    let before = rt.inspect(&key).await.expect("inspect").started_at;
    rt.restart(&key).await.expect("restart");
    let after = rt.inspect(&key).await.expect("inspect");
    assert_eq!(after.state, InstanceState::Running);
    assert!(after.started_at > before, "restart starts it anew");
    rt.remove(&key, VolumePolicy::Delete).await.expect("remove");
    assert!(matches!(rt.inspect(&key).await, Err(Error::NotFound { .. })));
    assert!(rt.list(&fx.owner).await.expect("list").is_empty());
}

/// Every operation on a missing instance is `NotFound`.
pub async fn not_found(rt: &dyn Runtime, fx: &Fixture) {
    let key = fx.key("missing");
    let is_not_found = |r: Result<(), Error>, op: &str| {
        assert!(matches!(r, Err(Error::NotFound { .. })), "{op} of a missing instance: {r:?}");
    };
    is_not_found(rt.start(&key).await, "start");
    is_not_found(rt.stop(&key, None).await, "stop");
    is_not_found(rt.restart(&key).await, "restart");
    is_not_found(rt.remove(&key, VolumePolicy::Delete).await, "remove");
    is_not_found(rt.inspect(&key).await.map(drop), "inspect");
    is_not_found(rt.stats(&key).await.map(drop), "stats");
    is_not_found(rt.logs(&key, LogOptions::default()).await.map(drop), "logs");
    is_not_found(rt.exec(&key, sh("true")).await.map(drop), "exec");
    is_not_found(rt.redeploy(&key, Redeploy::default()).await.map(drop), "redeploy");
}

/// A file written to the workspace survives restart and redeploy (with a new environment, which
/// the new container sees), and the address stays.
pub async fn workspace_survives(rt: &dyn Runtime, fx: &Fixture) {
    let key = fx.key("keep");
    let mut spec = fx.spec("keep");
    spec.env.insert("KWS_GENERATION".into(), "1".into());
    let created = rt.create(spec).await.expect("create");
    rt.start(&key).await.expect("start");
    let write = rt.exec(&key, sh("echo kept > /workspace/note && cat /workspace/note")).await;
    assert_eq!(write.expect("write").stdout_text(), "kept\n");
    rt.restart(&key).await.expect("restart");
    assert_eq!(read_note(rt, &key).await, "kept\n1\n", "after restart");
    let change = Redeploy {
        env: Some([("KWS_GENERATION".to_owned(), "2".to_owned())].into()),
        ..Redeploy::default()
    };
    let redeployed = rt.redeploy(&key, change).await.expect("redeploy");
    assert_eq!(redeployed.state, InstanceState::Running, "redeploy leaves it running");
    assert_ne!(redeployed.container_id, created.container_id, "a new container");
    assert_eq!(redeployed.address, created.address, "the same address");
    assert_eq!(redeployed.volume, created.volume, "the same workspace");
    assert_eq!(read_note(rt, &key).await, "kept\n2\n", "after redeploy");
    assert_eq!(rt.list(&fx.owner).await.expect("list").len(), 1, "one instance after redeploy");
    rt.remove(&key, VolumePolicy::Delete).await.expect("remove");
}

async fn read_note(rt: &dyn Runtime, key: &InstanceKey) -> String {
    let out = rt.exec(key, sh("cat /workspace/note; echo $KWS_GENERATION")).await;
    out.expect("read").stdout_text()
}

/// `remove` keeps the workspace volume or deletes it, as asked: an instance created again under
/// the same name finds its files only when the volume was kept.
pub async fn remove_keeps_or_deletes_the_workspace(rt: &dyn Runtime, fx: &Fixture) {
    let key = fx.key("reborn");
    let cycle = |script: &'static str| {
        let key = key.clone();
        async move {
            rt.create(fx.spec("reborn")).await.expect("create");
            rt.start(&key).await.expect("start");
            rt.exec(&key, sh(script)).await.expect("exec").stdout_text()
        }
    };
    assert_eq!(cycle("echo v1 > /workspace/kept; cat /workspace/kept").await, "v1\n");
    rt.remove(&key, VolumePolicy::Keep).await.expect("remove, keeping the volume");
    assert_eq!(cycle("cat /workspace/kept").await, "v1\n", "the kept workspace is back");
    rt.remove(&key, VolumePolicy::Delete).await.expect("remove, deleting the volume");
    let fresh = cycle("cat /workspace/kept 2>/dev/null || echo none").await;
    assert_eq!(fresh, "none\n", "a deleted workspace is gone");
    rt.remove(&key, VolumePolicy::Delete).await.expect("remove");
}

/// `stop` ends a well-behaved instance at once, and kills one that ignores the termination
/// signal after the timeout.
pub async fn stop_is_graceful_then_kills(rt: &dyn Runtime, fx: &Fixture) {
    let polite = fx.key("polite");
    rt.create(fx.spec("polite")).await.expect("create");
    rt.start(&polite).await.expect("start");
    let t = Instant::now();
    rt.stop(&polite, Some(Duration::from_secs(20))).await.expect("stop");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "a process that ends on SIGTERM: {:?}",
        t.elapsed()
    );
    let state = rt.inspect(&polite).await.expect("inspect").state;
    assert_ne!(state, InstanceState::Exited { code: 137 }, "it was not killed");

    let stubborn = fx.key("stubborn");
    let mut spec = fx.spec("stubborn");
    let script = "trap '' TERM; while true; do sleep 0.2; done";
    spec.command = Some(vec!["sh".into(), "-c".into(), script.into()]);
    rt.create(spec).await.expect("create");
    rt.start(&stubborn).await.expect("start");
    let t = Instant::now();
    rt.stop(&stubborn, Some(Duration::from_secs(2))).await.expect("stop");
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(1900), "it had its grace time: {took:?}");
    assert!(took < Duration::from_secs(15), "then it was killed: {took:?}");
    let state = rt.inspect(&stubborn).await.expect("inspect").state;
    assert_eq!(state, InstanceState::Exited { code: 137 }, "killed by SIGKILL");
    for key in [polite, stubborn] {
        rt.remove(&key, VolumePolicy::Delete).await.expect("remove");
    }
}

/// The health check's verdict shows in `inspect`, and a redeploy whose new container turns
/// unhealthy fails and leaves the old one running.
pub async fn health_is_reported_and_gates_redeploy(rt: &dyn Runtime, fx: &Fixture) {
    let key = fx.key("checked");
    let mut spec = fx.spec("checked");
    spec.env.insert("MODE".into(), "good".into());
    let probe = "test \"$MODE\" = good && test -f /workspace/ready";
    spec.health_check = Some(crate::HealthCheck {
        command: vec!["sh".into(), "-c".into(), probe.into()],
        interval: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
        retries: 2,
    });
    rt.create(spec).await.expect("create");
    rt.start(&key).await.expect("start");
    let health_by = |want: crate::Health| async move {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let health = rt.inspect(&fx.key("checked")).await.expect("inspect").health;
            if health == Some(want) || Instant::now() > deadline {
                return health;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(health_by(crate::Health::Unhealthy).await, Some(crate::Health::Unhealthy));
    rt.exec(&key, sh("touch /workspace/ready")).await.expect("exec");
    assert_eq!(health_by(crate::Health::Healthy).await, Some(crate::Health::Healthy));
    let old = rt.inspect(&key).await.expect("inspect");

    let bad = Redeploy {
        env: Some([("MODE".to_owned(), "bad".to_owned())].into()),
        ..Redeploy::default()
    };
    let r = rt.redeploy(&key, bad).await;
    assert!(matches!(r, Err(Error::StartFailed { .. })), "an unhealthy new container: {r:?}");
    let now = rt.inspect(&key).await.expect("inspect");
    assert_eq!((now.container_id, now.state), (old.container_id, InstanceState::Running));
    let good = Redeploy {
        env: Some(
            [("MODE".to_owned(), "good".to_owned()), ("V".to_owned(), "2".to_owned())].into(),
        ),
        ..Redeploy::default()
    };
    let redeployed = rt.redeploy(&key, good).await.expect("a healthy new container");
    assert_eq!(redeployed.health, Some(crate::Health::Healthy), "it was healthy before the switch");
    rt.remove(&key, VolumePolicy::Delete).await.expect("remove");
}

/// A redeploy whose new container does not start fails with `StartFailed` (or `ImageNotFound`)
/// and leaves the old container running, untouched.
pub async fn redeploy_failure_keeps_old(rt: &dyn Runtime, fx: &Fixture) {
    let key = fx.key("stay");
    rt.create(fx.spec("stay")).await.expect("create");
    rt.start(&key).await.expect("start");
    let old = rt.inspect(&key).await.expect("inspect");
    let crash = Redeploy { command: Some(Some(vec!["false".to_owned()])), ..Redeploy::default() };
    let r = rt.redeploy(&key, crash).await;
    assert!(matches!(r, Err(Error::StartFailed { .. })), "a crashing command: {r:?}");
    let missing = Redeploy {
        image: Some(ImageRef::parse("kws-test/no-such-image:0").expect("image")),
        ..Redeploy::default()
    };
    let r = rt.redeploy(&key, missing).await;
    assert!(matches!(r, Err(Error::ImageNotFound(_))), "a missing image: {r:?}");
    let now = rt.inspect(&key).await.expect("inspect");
    assert_eq!(now.container_id, old.container_id, "the old container stays");
    assert_eq!(now.state, InstanceState::Running, "and keeps running");
    assert_eq!(now.started_at, old.started_at, "without a restart");
    assert_eq!(now.spec, old.spec, "with its spec");
    let out = rt.exec(&key, sh("echo alive")).await.expect("exec");
    assert_eq!(out.stdout_text(), "alive\n");
    rt.remove(&key, VolumePolicy::Delete).await.expect("remove");
}

/// With `follow`, lines arrive as they are written, from both streams.
pub async fn logs_follow(rt: &dyn Runtime, fx: &Fixture) {
    let key = fx.key("talk");
    let mut spec = fx.spec("talk");
    let script =
        "echo to-stderr >&2; i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.4; done";
    spec.command = Some(vec!["sh".into(), "-c".into(), script.into()]);
    rt.create(spec).await.expect("create");
    rt.start(&key).await.expect("start");
    let follow = LogOptions { follow: true, tail: None };
    let mut lines = rt.logs(&key, follow).await.expect("logs");
    let mut arrivals = Vec::new();
    let mut stderr_seen = false;
    let deadline = Instant::now() + Duration::from_secs(15);
    while arrivals.len() < 4 {
        let next = tokio::time::timeout_at(deadline.into(), lines.next()).await;
        let line = next.expect("lines keep coming").expect("stream open").expect("line");
        if line.text == "to-stderr" {
            assert_eq!(line.source, crate::LogSource::Stderr);
            stderr_seen = true;
        } else {
            assert_eq!(line.text, format!("line-{}", arrivals.len()));
            arrivals.push(Instant::now());
        }
    }
    assert!(stderr_seen, "standard error is in the logs");
    let spread = arrivals[3] - arrivals[0];
    assert!(
        spread >= Duration::from_millis(800),
        "lines written 0.4 s apart arrive apart, not at once (spread {spread:?})"
    );
    drop(lines);
    let past = LogOptions { follow: false, tail: Some(2) };
    let tail: Vec<_> = rt.logs(&key, past).await.expect("logs").collect().await;
    assert_eq!(tail.len(), 2, "tail 2 gives two lines: {tail:?}");
    rt.remove(&key, VolumePolicy::Delete).await.expect("remove");
}

/// Bad specs fail with typed errors before anything is made, and leave no instance.
pub async fn bad_specs(rt: &dyn Runtime, fx: &Fixture) {
    let base = fx.spec("bad");
    let mut cases: Vec<(&str, InstanceSpec)> = Vec::new();
    let mut with = |what, change: &dyn Fn(&mut InstanceSpec)| {
        let mut spec = base.clone();
        change(&mut spec);
        cases.push((what, spec));
    };
    with("privileged", &|s| s.privileged = true);
    with("host network", &|s| s.host_network = true);
    with("host pid", &|s| s.host_pid = true);
    with("host mount", &|s| {
        s.mounts.push(crate::Mount {
            target: "/host".into(),
            source: crate::MountSource::HostPath("/".into()),
        })
    });
    let limits = |memory_bytes, cpus, pids| Some(Resources { memory_bytes, cpus, pids });
    with("negative memory", &|s| s.resources = limits(-1, 1.0, 64));
    with("absurd memory", &|s| s.resources = limits(1 << 50, 1.0, 64));
    with("negative cpus", &|s| s.resources = limits(64 << 20, -2.0, 64));
    with("NaN cpus", &|s| s.resources = limits(64 << 20, f64::NAN, 64));
    with("absurd cpus", &|s| s.resources = limits(64 << 20, 1e6, 64));
    with("unlimited pids", &|s| s.resources = limits(64 << 20, 1.0, -1));
    with("absurd pids", &|s| s.resources = limits(64 << 20, 1.0, 1 << 40));
    with("env name", &|s| drop(s.env.insert("A;B".into(), "x".into())));
    with("NUL in env", &|s| drop(s.env.insert("A".into(), "x\0y".into())));
    with("NUL in command", &|s| s.command = Some(vec!["sh\0".into()]));
    with("empty command", &|s| s.command = Some(vec![]));
    with("port 0", &|s| s.app_ports = vec![0]);
    with("port twice", &|s| s.app_ports = vec![3000, 3000]);
    with("app port is the IDE port", &|s| {
        s.ide_port = Some(3000);
        s.app_ports = vec![3000];
    });
    with("mount target ..", &|s| {
        s.mounts.push(crate::Mount {
            target: "/tmp/../etc".into(),
            source: crate::MountSource::Tmpfs { size_bytes: 1 << 20 },
        })
    });
    with("missing image", &|s| {
        s.image = Some(ImageRef::parse("kws-test/no-such-image:0").expect("image"))
    });
    for (what, spec) in cases {
        match rt.create(spec).await {
            Err(Error::Forbidden(_) | Error::InvalidSpec { .. } | Error::ImageNotFound(_)) => {}
            other => panic!("{what}: expected a typed refusal, got {other:?}"),
        }
    }
    let made = rt.inspect(&fx.key("bad")).await;
    assert!(matches!(made, Err(Error::NotFound { .. })), "no instance was made: {made:?}");
}

/// `purge` takes back every trace of an instance, whatever its state, and a second purge (or a
/// purge of a name that never existed) finds nothing; `networks` lists the owner's network with
/// the instance's address inside its subnet; `remove_network` refuses while an instance is
/// attached and removes the network after.
pub async fn purge_and_networks(rt: &dyn Runtime, fx: &Fixture) {
    let key = fx.key("purged");
    let info = rt.create(fx.spec("purged")).await.expect("create");
    rt.start(&key).await.expect("start");
    let net = rt
        .networks()
        .await
        .expect("networks")
        .into_iter()
        .find(|n| n.owner == fx.owner)
        .expect("the owner's network is listed");
    assert!(net.subnet.contains(&info.address), "{} in {}", info.address, net.subnet);
    assert!(rt.list_all().await.expect("list_all").iter().any(|i| i.key == key));
    assert!(
        matches!(rt.remove_network(&fx.owner).await, Err(Error::InUse(_))),
        "a network with an instance attached is in use"
    );
    let purged = rt.purge(&key, VolumePolicy::Delete).await.expect("purge");
    assert_eq!((purged.containers, purged.leases), (1, 1), "{purged:?}");
    assert!(matches!(rt.inspect(&key).await, Err(Error::NotFound { .. })));
    let again = rt.purge(&key, VolumePolicy::Delete).await.expect("second purge");
    assert!(!again.found_anything(), "a second purge finds nothing: {again:?}");
    let never = rt.purge(&fx.key("never"), VolumePolicy::Delete).await.expect("purge of nothing");
    assert!(!never.found_anything());
    // The address went back: a new instance can be made and purged again.
    rt.create(fx.spec("purged")).await.expect("create after purge");
    rt.purge(&key, VolumePolicy::Delete).await.expect("purge");
    assert!(rt.remove_network(&fx.owner).await.expect("remove network"), "the network went");
    assert!(!rt.remove_network(&fx.owner).await.expect("again"), "no network left to remove");
    assert!(rt.networks().await.expect("networks").iter().all(|n| n.owner != fx.owner));
}

/// `watch` reports an instance's start, its stop and its removal, in that order.
pub async fn watch_reports_changes(rt: &dyn Runtime, fx: &Fixture) {
    use crate::InstanceChange;
    let key = fx.key("watched");
    let mut events = rt.watch().await.expect("watch");
    rt.create(fx.spec("watched")).await.expect("create");
    rt.start(&key).await.expect("start");
    rt.stop(&key, None).await.expect("stop");
    rt.remove(&key, VolumePolicy::Delete).await.expect("remove");
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.contains(&"removed") {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left, events.next()).await;
        let event = next.expect("events within 30 s").expect("the feed is open").expect("event");
        if event.key != key {
            continue;
        }
        seen.push(match event.change {
            InstanceChange::State(InstanceState::Running) => "running",
            InstanceChange::State(InstanceState::Exited { .. }) => "exited",
            InstanceChange::Removed => "removed",
            _ => continue,
        });
    }
    seen.dedup();
    assert_eq!(seen, ["running", "exited", "removed"], "the order of the changes");
}
