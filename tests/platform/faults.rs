//! A failure injected after each step of each flow leaves nothing behind on the real backends:
//! no lease, peer row, interface peer, nft element, container, network, volume, route (file),
//! role, database or store row. Flows that make things undo themselves; flows that remove
//! things are finished by the next reconcile.

use std::time::Duration;

use kws::platform::{
    AddDevice, ErrorKind, Fault, FaultPoint, LaunchInstance, PublishApp, Scope,
    store::{OpState, PlatformStoreExt},
};

use super::lab::Lab;

fn point(kind: &str, step: &str) -> FaultPoint {
    FaultPoint { kind: kind.to_owned(), step: step.to_owned() }
}

/// Fails `kind` after each of `steps` in turn, running `flow` each time, and checks that the
/// footprint is back to where it was and the operation ended `compensated`.
macro_rules! each_step_undone {
    ($lab:expr, $tenant:expr, $kind:literal, [$($step:literal),*], $flow:expr) => {{
        let before = $lab.footprint(&$tenant).await;
        for step in [$($step),*] {
            $lab.platform().inject_fault(point($kind, step), Some(Fault::Fail));
            let result = $flow.await;
            $lab.platform().inject_fault(point($kind, step), None);
            let err = result.expect_err(&format!("{} failed after {step}", $kind));
            assert_ne!(err.kind(), ErrorKind::Invalid, "{err}");
            let after = $lab.footprint(&$tenant).await;
            assert_eq!(after, before, "{} after {step}: what was left", $kind);
            let ops = $lab.platform().store().list_operations(&Scope::Operator, Some(&$tenant), None, 1).await.expect("ops");
            assert_eq!(ops[0].kind, $kind);
            assert_eq!(ops[0].state, OpState::Compensated, "{} after {step}: {:?}", $kind, ops[0]);
        }
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failure_after_any_step_of_a_making_flow_leaves_nothing() {
    let Some(lab) = Lab::start().await else { return };
    let alice = lab.tenant_of("alice").await;
    let op = Scope::Operator;
    let p = lab.platform();
    each_step_undone!(
        lab,
        alice,
        "add_device",
        ["record", "lease", "peer", "interface", "firewall", "config"],
        p.add_device(&op, &alice, AddDevice::named("laptop"), None)
    );
    each_step_undone!(
        lab,
        alice,
        "launch_instance",
        ["record", "container", "firewall", "start", "route", "observe"],
        p.launch_instance(
            &op,
            &alice,
            LaunchInstance::named(&format!("web-{}", alice.as_str())).expect("req"),
            None
        )
    );
    each_step_undone!(
        lab,
        alice,
        "create_database",
        ["record", "database"],
        p.create_database(&op, &alice, "shop", None)
    );
    // An app needs an instance: launched for real, then every publish step fails.
    let web = format!("web-{}", alice.as_str());
    p.launch_instance(&op, &alice, LaunchInstance::named(&web).expect("req"), None)
        .await
        .expect("launch");
    let app = || PublishApp {
        name: format!("shop-{}", alice.as_str()),
        instance: web.clone(),
        port: 3000,
    };
    each_step_undone!(
        lab,
        alice,
        "publish_app",
        ["record", "route", "observe"],
        p.publish_app(&op, &alice, app(), None)
    );
    p.remove_instance(&op, &alice, &web).await.expect("remove");
    assert_eq!(lab.footprint(&alice).await.containers, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failure_after_any_step_of_a_removing_flow_is_finished_by_reconcile() {
    let Some(lab) = Lab::start().await else { return };
    let alice = lab.tenant_of("alice").await;
    let op = Scope::Operator;
    let p = lab.platform();
    let empty = lab.footprint(&alice).await;
    let web = format!("web-{}", alice.as_str());
    let shop = format!("shop-{}", alice.as_str());
    let cases: [(&str, &[&str]); 4] = [
        ("unpublish_app", &["mark", "route", "record"]),
        ("remove_instance", &["mark", "apps", "route", "container", "network", "record"]),
        ("revoke_device", &["mark", "vpn", "firewall", "record"]),
        ("change_database", &["mark", "database"]),
    ];
    for (kind, steps) in cases {
        for step in steps {
            // Everything made for real.
            p.add_device(&op, &alice, AddDevice::named("laptop"), None).await.expect("device");
            p.launch_instance(&op, &alice, LaunchInstance::named(&web).expect("req"), None)
                .await
                .expect("launch");
            let app = PublishApp { name: shop.clone(), instance: web.clone(), port: 3000 };
            p.publish_app(&op, &alice, app, None).await.expect("publish");
            p.create_database(&op, &alice, "shop", None).await.expect("database");
            p.inject_fault(point(kind, step), Some(Fault::Fail));
            let failed = match kind {
                "unpublish_app" => p.unpublish_app(&op, &alice, &shop).await,
                "remove_instance" => p.remove_instance(&op, &alice, &web).await,
                "revoke_device" => p.revoke_device(&op, &alice, "laptop").await,
                _ => p.drop_database(&op, &alice, "shop").await,
            };
            p.inject_fault(point(kind, step), None);
            assert!(failed.is_err(), "{kind} failed after {step}");
            // Once the mark is older than a lease, reconcile finishes the removal.
            tokio::time::sleep(p.settings().operation_lease + Duration::from_millis(200)).await;
            let report = p.reconcile().await.expect("reconcile");
            assert!(report.errors.is_empty(), "{report:?}");
            // Then everything else goes too, for the next case.
            p.delete_tenant(&op, &alice).await.expect("delete tenant");
            p.create_tenant(&op, alice.clone(), "alice", None).await.expect("tenant again");
            let left = lab.footprint(&alice).await;
            assert_eq!(left, empty, "{kind} after {step}, then reconcile and the tenant's removal");
            assert!(
                p.store()
                    .list_all::<kws::platform::model::AppSpec>(&op, None)
                    .await
                    .expect("apps")
                    .is_empty()
            );
        }
    }
}
