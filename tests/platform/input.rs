//! Concurrency and bad input on the real backends: two concurrent launches of one name make one
//! instance; a quota reached is a typed error that makes nothing; hostile names at every entry
//! are refused with nothing made. And observed status follows the engine's events.

use std::time::{Duration, Instant};

use kws::platform::{
    AddDevice, ErrorKind, LaunchInstance, PublishApp, Scope,
    model::{InstanceSpec, RunState},
    store::{PlatformStoreExt, Quotas},
};

use super::lab::Lab;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_launches_quotas_and_hostile_names() {
    let Some(lab) = Lab::start().await else { return };
    let alice = lab.tenant_of("alice").await;
    let op = Scope::Operator;
    let p = lab.platform();
    let empty = lab.footprint(&alice).await;

    // Two launches of one name at once, no idempotency key: one instance, one AlreadyExists.
    let name = format!("web-{alice}");
    let launch =
        || p.launch_instance(&op, &alice, LaunchInstance::named(&name).expect("req"), None);
    let (a, b) = tokio::join!(launch(), launch());
    let (ok, err): (Vec<_>, Vec<_>) = [a, b].into_iter().partition(Result::is_ok);
    assert_eq!(ok.len(), 1, "one launch wins");
    assert_eq!(err[0].as_ref().map(drop).expect_err("the other").kind(), ErrorKind::AlreadyExists);
    assert_eq!(lab.footprint(&alice).await.containers, 1, "one container");
    p.remove_instance(&op, &alice, &name).await.expect("remove");
    assert_eq!(lab.footprint(&alice).await, empty, "the removal took everything back");

    // A quota reached: typed, and nothing made.
    let tenant = p.store().get_tenant(&op, &alice).await.expect("tenant");
    let quotas = Quotas { instances: Some(1), devices: Some(1), ..Quotas::default() };
    p.set_quotas(&op, &alice, tenant.version, quotas).await.expect("quotas");
    p.launch_instance(&op, &alice, LaunchInstance::named(&name).expect("req"), None)
        .await
        .expect("first");
    p.add_device(&op, &alice, AddDevice::named("one"), None).await.expect("first device");
    let before = lab.footprint(&alice).await;
    let second = p
        .launch_instance(
            &op,
            &alice,
            LaunchInstance::named(&format!("two-{alice}")).expect("req"),
            None,
        )
        .await;
    assert_eq!(second.map(drop).expect_err("quota").kind(), ErrorKind::QuotaExceeded);
    let device = p.add_device(&op, &alice, AddDevice::named("two"), None).await;
    assert_eq!(device.map(drop).expect_err("quota").kind(), ErrorKind::QuotaExceeded);
    assert_eq!(lab.footprint(&alice).await, before, "a refused quota made nothing");

    // Hostile names at every entry: Invalid, nothing made.
    let hostile =
        ["", "a b", "a;b", "-a", "a/..", "x\0y", "$(id)", "a'b", "a\nb", "..", "ÿ", "A\"B"];
    for bad in hostile {
        let errs = [
            p.launch_instance(&op, &alice, LaunchInstance::named(bad).expect("req"), None)
                .await
                .map(drop),
            p.add_device(&op, &alice, AddDevice::named(bad), None).await.map(drop),
            p.publish_app(
                &op,
                &alice,
                PublishApp { name: bad.into(), instance: name.clone(), port: 3000 },
                None,
            )
            .await
            .map(drop),
            p.publish_app(
                &op,
                &alice,
                PublishApp { name: "ok".into(), instance: bad.into(), port: 3000 },
                None,
            )
            .await
            .map(drop),
            p.create_database(&op, &alice, bad, None).await.map(drop),
            p.stop_instance(&op, &alice, bad).await.map(drop),
            p.remove_instance(&op, &alice, bad).await,
            p.revoke_device(&op, &alice, bad).await,
            p.unpublish_app(&op, &alice, bad).await,
            p.drop_database(&op, &alice, bad).await,
        ];
        for (i, err) in errs.into_iter().enumerate() {
            assert_eq!(err.expect_err(bad).kind(), ErrorKind::Invalid, "entry {i}, {bad:?}");
        }
    }
    assert_eq!(lab.footprint(&alice).await, before, "hostile input made nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn observed_status_follows_the_engines_events() {
    let Some(lab) = Lab::start().await else { return };
    let alice = lab.tenant_of("alice").await;
    let op = Scope::Operator;
    let p = lab.platform();
    let name = format!("web-{alice}");
    p.launch_instance(&op, &alice, LaunchInstance::named(&name).expect("req"), None)
        .await
        .expect("launch");
    // No reconcile runs in the lab (its timer is an hour): only the event feed can tell.
    let background = p.spawn_background();
    let container = format!("kws.{alice}.{name}");
    lab.engine
        .client()
        .kill_container(&container, None::<bollard::query_parameters::KillContainerOptions>)
        .await
        .expect("kill by hand");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let seen = p.store().get::<InstanceSpec>(&op, &alice, &name).await.expect("get");
        if seen.status.value.as_ref().is_some_and(|s| s.state == RunState::Exited) {
            break;
        }
        assert!(Instant::now() < deadline, "the status never showed the kill: {:?}", seen.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    background.stop().await;
}
