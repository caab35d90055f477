//! The Platform's flows on embedded defaults (every in-memory backend): the whole life of a
//! tenant, idempotency, quotas, scopes and hostile input, and reconcile.

use std::sync::Arc;

use kws::{
    core::OwnerId,
    platform::{
        AddDevice, ErrorKind, LaunchInstance, Platform, PublishApp, Role, Scope,
        model::{AppSpec, DeviceSpec, InstanceSpec, RunState},
        store::{OpState, PlatformStoreExt, Quotas},
    },
};

fn owner(s: &str) -> OwnerId {
    OwnerId::parse(s).expect("owner")
}

async fn platform_with(tenants: &[&str]) -> Platform {
    let platform = Platform::embedded().await.expect("embedded");
    for t in tenants {
        platform.create_tenant(&Scope::Operator, owner(t), t, None).await.expect("tenant");
    }
    platform
}

#[tokio::test]
async fn a_tenant_lives_and_goes_without_a_trace() {
    let platform = platform_with(&["alice"]).await;
    let alice = owner("alice");
    let scope = Scope::tenant(alice.clone(), Role::Member);
    let device = platform
        .add_device(&scope, &alice, AddDevice::named("laptop"), None)
        .await
        .expect("device");
    assert!(device.config.private_key.is_some(), "a generated key is shown once");
    assert!(device.config.render().contains("[Peer]"));
    assert!(!device.config.qr_png().expect("qr").is_empty());
    let web = platform
        .launch_instance(&scope, &alice, LaunchInstance::named("web").expect("req"), None)
        .await
        .expect("launch");
    assert!(web.spec.address.is_some());
    let status =
        platform.store().get::<InstanceSpec>(&scope, &alice, "web").await.expect("get").status;
    assert_eq!(status.value.expect("observed").state, RunState::Running);
    let app = PublishApp { name: "shop".into(), instance: "web".into(), port: 3000 };
    platform.publish_app(&scope, &alice, app, None).await.expect("publish");
    let routes = platform.proxy().routes().await.expect("routes");
    let hosts: Vec<String> = routes.iter().map(|r| r.host().to_string()).collect();
    assert_eq!(hosts, ["shop.kws.localhost", "web.kws.localhost"]);
    // The firewall lets the device reach alice's instance subnet only.
    let firewall = platform.hostnet().current().await.expect("firewall");
    let rules = &firewall.isolation.as_ref().expect("isolation").peers;
    assert_eq!(rules.len(), 1);
    assert!(
        rules[0]
            .allowed
            .iter()
            .any(|n| n.contains(&std::net::IpAddr::V4(web.spec.address.expect("address"))))
    );
    let report = platform.reconcile().await.expect("reconcile");
    assert!(report.changed_nothing(), "{report:?}");

    platform.delete_tenant(&Scope::Operator, &alice).await.expect("delete tenant");
    assert!(platform.proxy().routes().await.expect("routes").is_empty());
    assert!(platform.runtime().expect("runtime").list_all().await.expect("list").is_empty());
    assert!(
        platform
            .vpn()
            .store()
            .list(&platform.vpn().settings().interface)
            .await
            .expect("peers")
            .is_empty()
    );
    let usage =
        platform.allocator().usage(&platform.vpn().settings().pool_v4).await.expect("usage");
    assert_eq!(usage.allocated, 0, "no VPN lease left");
    assert!(platform.store().get_tenant(&Scope::Operator, &alice).await.is_err());
}

#[tokio::test]
async fn the_same_key_and_request_is_one_instance_and_another_request_is_refused() {
    let platform = platform_with(&["alice"]).await;
    let alice = owner("alice");
    let scope = Scope::Operator;
    let request = LaunchInstance::named("web").expect("req");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (platform, alice, request) = (platform.clone(), alice.clone(), request.clone());
            tokio::spawn(async move {
                platform.launch_instance(&Scope::Operator, &alice, request, Some("k1")).await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.expect("task").expect("launch").meta.id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one instance for one key");
    let mut other = request.clone();
    other.memory_mb = Some(512);
    let err =
        platform.launch_instance(&scope, &alice, other, Some("k1")).await.expect_err("mismatch");
    assert_eq!(err.kind(), ErrorKind::IdempotencyMismatch);
    // Without a key, a second launch of the name is AlreadyExists and leaves nothing.
    let err = platform.launch_instance(&scope, &alice, request, None).await.expect_err("duplicate");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert_eq!(platform.runtime().expect("rt").list_all().await.expect("list").len(), 1);
}

#[tokio::test]
async fn hostnames_are_one_namespace_over_tenants_and_kinds() {
    let platform = platform_with(&["alice", "bob"]).await;
    let (alice, bob) = (owner("alice"), owner("bob"));
    let op = Scope::Operator;
    platform
        .launch_instance(&op, &alice, LaunchInstance::named("web").expect("req"), None)
        .await
        .expect("launch");
    let err = platform
        .launch_instance(&op, &bob, LaunchInstance::named("web").expect("req"), None)
        .await
        .expect_err("taken");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    platform
        .launch_instance(&op, &bob, LaunchInstance::named("api2").expect("req"), None)
        .await
        .expect("launch");
    let app = PublishApp { name: "web".into(), instance: "api2".into(), port: 3000 };
    let err =
        platform.publish_app(&op, &bob, app, None).await.expect_err("an instance has the name");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    let app = PublishApp { name: "www".into(), instance: "api2".into(), port: 3000 };
    assert_eq!(
        platform.publish_app(&op, &bob, app, None).await.expect_err("reserved").kind(),
        ErrorKind::Invalid
    );
    let app = PublishApp { name: "ide".into(), instance: "api2".into(), port: 8080 };
    assert_eq!(
        platform.publish_app(&op, &bob, app, None).await.expect_err("the IDE port").kind(),
        ErrorKind::Invalid
    );
    assert!(platform.store().list_all::<AppSpec>(&op, None).await.expect("apps").is_empty());
}

#[tokio::test]
async fn another_tenant_is_not_found_and_a_viewer_cannot_change_anything() {
    let platform = platform_with(&["alice", "bob"]).await;
    let (alice, bob) = (owner("alice"), owner("bob"));
    platform
        .launch_instance(&Scope::Operator, &alice, LaunchInstance::named("web").expect("req"), None)
        .await
        .expect("launch");
    let bob_scope = Scope::tenant(bob.clone(), Role::Admin);
    for err in [
        platform
            .stop_instance(&bob_scope, &alice, "web")
            .await
            .map(drop)
            .expect_err("bob stops alice's"),
        platform.remove_instance(&bob_scope, &alice, "web").await.expect_err("bob removes alice's"),
        platform
            .store()
            .get::<InstanceSpec>(&bob_scope, &alice, "web")
            .await
            .map(drop)
            .expect_err("bob reads"),
        platform
            .stop_instance(&bob_scope, &bob, "web")
            .await
            .map(drop)
            .expect_err("by his own tenant"),
    ] {
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    }
    let listed = platform.store().list_all::<InstanceSpec>(&bob_scope, None).await.expect("list");
    assert!(listed.is_empty(), "bob lists none of alice's");
    let viewer = Scope::tenant(alice.clone(), Role::Viewer);
    let err = platform.stop_instance(&viewer, &alice, "web").await.map(drop).expect_err("viewer");
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    let err = platform
        .add_device(&viewer, &alice, AddDevice::named("x"), None)
        .await
        .map(drop)
        .expect_err("viewer");
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    assert!(
        platform
            .store()
            .list_all::<DeviceSpec>(&Scope::Operator, None)
            .await
            .expect("devices")
            .is_empty()
    );
}

#[tokio::test]
async fn a_keyed_launch_that_failed_runs_again_when_retried() {
    let platform = Platform::embedded().await.expect("embedded");
    let alice = owner("alice");
    let op = Scope::Operator;
    let none = Quotas { instances: Some(0), ..Quotas::default() };
    let tenant =
        platform.create_tenant(&op, alice.clone(), "Alice", Some(none)).await.expect("tenant");
    let request = LaunchInstance::named("web").expect("req");
    for attempt in ["first", "retry"] {
        let err = platform
            .launch_instance(&op, &alice, request.clone(), Some("k"))
            .await
            .expect_err("no room");
        assert_eq!(err.kind(), ErrorKind::QuotaExceeded, "the {attempt} says why: {err:?}");
    }
    // The cause goes: the same key and request now launch, once.
    let room = Quotas { instances: Some(1), ..Quotas::default() };
    platform.set_quotas(&op, &alice, tenant.version, room).await.expect("quotas");
    let made = platform.launch_instance(&op, &alice, request.clone(), Some("k")).await.expect("ok");
    let again = platform.launch_instance(&op, &alice, request, Some("k")).await.expect("again");
    assert_eq!(made.meta.id, again.meta.id, "the key names the launch that ran");
    let ops = platform.store().list_operations(&op, Some(&alice), None, 100).await.expect("ops");
    let states: Vec<OpState> = ops.iter().map(|o| o.state).collect();
    assert_eq!(
        states,
        [OpState::Succeeded, OpState::Compensated, OpState::Compensated],
        "newest first"
    );
}

#[tokio::test]
async fn a_quota_reached_is_a_typed_error_and_makes_nothing() {
    let platform = Platform::embedded().await.expect("embedded");
    let alice = owner("alice");
    let quotas = Quotas { instances: Some(2), cpu_millis: Some(1500), ..Quotas::default() };
    platform
        .create_tenant(&Scope::Operator, alice.clone(), "Alice", Some(quotas))
        .await
        .expect("tenant");
    let op = Scope::Operator;
    let mut small = LaunchInstance::named("a1").expect("req");
    small.cpu_millis = Some(1000);
    platform.launch_instance(&op, &alice, small.clone(), None).await.expect("first");
    small.name = "a2".into();
    let err = platform.launch_instance(&op, &alice, small, None).await.expect_err("cpu quota");
    assert_eq!(err.kind(), ErrorKind::QuotaExceeded, "{err:?}");
    let mut tiny = LaunchInstance::named("a3").expect("req");
    tiny.cpu_millis = Some(500);
    platform.launch_instance(&op, &alice, tiny.clone(), None).await.expect("fits");
    tiny.name = "a4".into();
    tiny.cpu_millis = Some(10);
    let err = platform.launch_instance(&op, &alice, tiny, None).await.expect_err("count quota");
    assert_eq!(err.kind(), ErrorKind::QuotaExceeded);
    assert_eq!(platform.runtime().expect("rt").list_all().await.expect("list").len(), 2);
    let ops = platform.store().list_operations(&op, Some(&alice), None, 100).await.expect("ops");
    assert!(ops.iter().all(|o| o.state.is_final()), "no operation left running");
}

#[tokio::test]
async fn hostile_names_are_refused_at_every_entry_with_no_side_effect() {
    let platform = platform_with(&["alice"]).await;
    let alice = owner("alice");
    let op = Scope::Operator;
    let hostile = [
        "",
        "a b",
        "a;b",
        "-a",
        "a/..",
        "x\0y",
        "$(id)",
        "a'b",
        "a\nb",
        "..",
        "é",
        &"n".repeat(64),
    ];
    for bad in hostile {
        let mut launch = LaunchInstance::named(bad).expect("req");
        let err = platform.launch_instance(&op, &alice, launch.clone(), None).await.expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::Invalid, "{bad:?}: {err}");
        launch.name = "ok".into();
        // 64 letters are a well-formed image reference (an image the engine lacks).
        if bad.len() < 64 {
            launch.image = Some(bad.to_owned());
            let err =
                platform.launch_instance(&op, &alice, launch.clone(), None).await.expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::Invalid, "image {bad:?}: {err}");
        }
        launch.image = None;
        launch.env.insert(bad.to_owned(), "x".to_owned());
        if !bad.is_empty() && bad.len() < 64 {
            let err = platform.launch_instance(&op, &alice, launch, None).await.expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::Invalid, "env {bad:?}: {err}");
        }
        let err = platform
            .add_device(&op, &alice, AddDevice::named(bad), None)
            .await
            .map(drop)
            .expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::Invalid, "device {bad:?}");
        let key =
            AddDevice { name: "ok".into(), public_key: Some(bad.to_owned()), expires_at: None };
        let err = platform.add_device(&op, &alice, key, None).await.map(drop).expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::Invalid, "key {bad:?}");
        let app = PublishApp { name: bad.into(), instance: "web".into(), port: 3000 };
        assert_eq!(
            platform.publish_app(&op, &alice, app, None).await.expect_err(bad).kind(),
            ErrorKind::Invalid
        );
        assert_eq!(
            platform.stop_instance(&op, &alice, bad).await.map(drop).expect_err(bad).kind(),
            ErrorKind::Invalid
        );
        assert_eq!(
            platform.revoke_device(&op, &alice, bad).await.expect_err(bad).kind(),
            ErrorKind::Invalid
        );
        let key = Some(bad);
        if !bad.is_empty() && bad.bytes().all(|b| b.is_ascii_graphic()) {
            continue;
        }
        let err = platform
            .launch_instance(&op, &alice, LaunchInstance::named("ok").expect("req"), key)
            .await
            .expect_err("key");
        assert_eq!(err.kind(), ErrorKind::Invalid, "idempotency key {bad:?}");
    }
    let ops = platform.store().list_operations(&op, None, None, 100).await.expect("ops");
    assert!(ops.is_empty(), "no operation recorded: {ops:?}");
    assert!(platform.runtime().expect("rt").list_all().await.expect("list").is_empty());
    assert!(platform.proxy().routes().await.expect("routes").is_empty());
    let _ = Arc::new(());
}

#[tokio::test]
async fn reconcile_restores_what_was_removed_behind_its_back() {
    let platform = platform_with(&["alice"]).await;
    let alice = owner("alice");
    let op = Scope::Operator;
    let web = platform
        .launch_instance(&op, &alice, LaunchInstance::named("web").expect("req"), None)
        .await
        .expect("launch");
    platform.add_device(&op, &alice, AddDevice::named("laptop"), None).await.expect("device");
    let rt = platform.runtime().expect("rt").clone();
    let key = kws::runtime::InstanceKey::new(alice.clone(), "web".parse().expect("name"));
    rt.purge(&key, kws::runtime::VolumePolicy::Keep).await.expect("purge by hand");
    let host = "web.kws.localhost".parse().expect("host");
    platform.proxy().unpublish(&host).await.expect("unpublish by hand");
    platform.hostnet().teardown().await.expect("flush by hand");
    let report = platform.reconcile().await.expect("reconcile");
    assert_eq!(report.instances_recreated, ["alice/web"], "{report:?}");
    assert_eq!(report.routes_published, ["web.kws.localhost"]);
    assert!(report.firewall_replaced);
    assert!(platform.reconcile().await.expect("again").changed_nothing());
    let after = platform.store().get::<InstanceSpec>(&op, &alice, "web").await.expect("get");
    assert_eq!(after.status.value.expect("status").state, RunState::Running);
    let _ = web;
    let ops = platform.store().list_operations(&op, Some(&alice), None, 10).await.expect("ops");
    assert!(ops.iter().all(|o| o.state == OpState::Succeeded));
}

#[tokio::test]
async fn a_cancel_stops_a_running_operation_and_undoes_it() {
    use kws::platform::{Fault, FaultPoint};
    let platform = platform_with(&["alice"]).await;
    let alice = owner("alice");
    let point = FaultPoint { kind: "launch_instance".into(), step: "container".into() };
    platform.inject_fault(point, Some(Fault::Pause));
    let task = {
        let (platform, alice) = (platform.clone(), alice.clone());
        tokio::spawn(async move {
            platform
                .launch_instance(
                    &Scope::Operator,
                    &alice,
                    LaunchInstance::named("web").expect("req"),
                    None,
                )
                .await
        })
    };
    let op = loop {
        let ops = platform
            .store()
            .list_operations(&Scope::Operator, Some(&alice), None, 1)
            .await
            .expect("ops");
        if let Some(op) = ops.into_iter().find(|o| o.steps.iter().any(|s| s.name == "container")) {
            if op
                .steps
                .iter()
                .any(|s| s.name == "container" && s.state == kws::platform::store::StepState::Done)
            {
                break op;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    assert_eq!(
        platform.runtime().expect("rt").list_all().await.expect("list").len(),
        1,
        "the container is made"
    );
    // Another tenant cannot cancel it.
    let bob = Scope::tenant(owner("bob"), Role::Admin);
    assert_eq!(
        platform.cancel_operation(&bob, op.id).await.expect_err("bob").kind(),
        ErrorKind::NotFound
    );
    let ended = platform.cancel_operation(&Scope::Operator, op.id).await.expect("cancel");
    assert_eq!(ended.state, OpState::Compensated, "{ended:?}");
    let err = task.await.expect("task").expect_err("cancelled");
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    assert!(
        platform.runtime().expect("rt").list_all().await.expect("list").is_empty(),
        "the container is gone"
    );
    assert!(
        platform
            .store()
            .find::<InstanceSpec>(&Scope::Operator, &alice, "web")
            .await
            .expect("find")
            .is_none()
    );
}

#[tokio::test]
async fn an_operation_past_its_deadline_is_undone() {
    use kws::platform::{Fault, FaultPoint, PlatformParts};
    let mut parts = PlatformParts::embedded().await.expect("parts");
    parts.settings.operation_deadline = std::time::Duration::from_millis(300);
    let platform = Platform::new(parts);
    let alice = owner("alice");
    platform.create_tenant(&Scope::Operator, alice.clone(), "alice", None).await.expect("tenant");
    let point = FaultPoint { kind: "add_device".into(), step: "peer".into() };
    platform.inject_fault(point, Some(Fault::Pause));
    let err = platform
        .add_device(&Scope::Operator, &alice, AddDevice::named("laptop"), None)
        .await
        .map(drop)
        .expect_err("deadline");
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    let ops = platform
        .store()
        .list_operations(&Scope::Operator, Some(&alice), None, 1)
        .await
        .expect("ops");
    assert_eq!(ops[0].state, OpState::Compensated);
    let vpn = platform.vpn();
    assert!(vpn.store().list(&vpn.settings().interface).await.expect("peers").is_empty());
    assert_eq!(vpn.allocator().usage(&vpn.settings().pool_v4).await.expect("usage").allocated, 0);
}

#[tokio::test]
async fn a_tenant_streams_its_own_events_only_and_resumes() {
    use futures::StreamExt;
    use kws::platform::EventBody;
    let platform = platform_with(&["alice", "bob"]).await;
    let (alice, bob) = (owner("alice"), owner("bob"));
    let alice_scope = Scope::tenant(alice.clone(), Role::Viewer);
    let mut stream = platform.events().subscribe(alice_scope.clone(), Some(0));
    platform
        .launch_instance(
            &Scope::Operator,
            &bob,
            LaunchInstance::named("bobweb").expect("req"),
            None,
        )
        .await
        .expect("bob");
    platform
        .launch_instance(&Scope::Operator, &alice, LaunchInstance::named("web").expect("req"), None)
        .await
        .expect("alice");
    let mut seen = Vec::new();
    while let Ok(Some(event)) =
        tokio::time::timeout(std::time::Duration::from_millis(200), stream.next()).await
    {
        let event = event.expect("no gap");
        assert_eq!(event.tenant, alice, "only alice's events: {event:?}");
        seen.push(event);
    }
    assert!(seen.iter().any(|e| matches!(&e.body, EventBody::Operation { kind, state, .. } if kind == "launch_instance" && *state == OpState::Succeeded)));
    assert!(seen.iter().any(
        |e| matches!(&e.body, EventBody::Object { name, change: "created", .. } if name == "web")
    ));
    assert!(seen.windows(2).all(|w| w[0].seq < w[1].seq), "in order");
    // Resume after the third: the rest again, nothing twice.
    let third = seen[2].seq;
    let mut again = platform.events().subscribe(alice_scope, Some(third));
    for expected in &seen[3..] {
        let next = again.next().await.expect("open").expect("no gap");
        assert_eq!(next.seq, expected.seq);
    }
}
