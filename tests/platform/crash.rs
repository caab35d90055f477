//! A child process running the Platform is killed with SIGKILL in the middle of each flow (at
//! several steps). A new Platform on the same PostgreSQL stores and engines converges: the
//! operation ends `compensated` (flows that make things) or `succeeded` (flows that remove
//! things), with nothing leaked and nothing made twice.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use kws::{
    core::OwnerId,
    platform::{
        AddDevice, Fault, FaultPoint, LaunchInstance, Platform, PublishApp, Scope,
        store::{OpState, Operation, StepState},
    },
};
use serde::{Deserialize, Serialize};

use super::lab::{Lab, LabSpec};

/// What a child does: run `kind` for `tenant`, pausing for good after `step`.
#[derive(Debug, Serialize, Deserialize)]
struct ChildTask {
    spec: LabSpec,
    kind: String,
    step: String,
    tenant: OwnerId,
    name: String,
}

const CHILD: &str = "KWS_PLATFORM_CRASH_CHILD";

/// The entry point of the child processes `crash_at_every_step_converges` starts (this test
/// binary run again with `CHILD` set): without it there is nothing to do here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process() {
    let Ok(task) = std::env::var(CHILD) else { return };
    let task: ChildTask = serde_json::from_str(&task).expect("child task");
    let platform = Platform::new(task.spec.parts(|_| {}).await);
    platform.inject_fault(
        FaultPoint { kind: task.kind.clone(), step: task.step.clone() },
        Some(Fault::Pause),
    );
    let result = run_flow(&platform, &task.kind, &task.tenant, &task.name).await;
    panic!("the flow should have paused after {}, it ended: {result:?}", task.step);
}

async fn run_flow(
    p: &Platform,
    kind: &str,
    tenant: &OwnerId,
    name: &str,
) -> Result<(), kws::platform::Error> {
    let op = Scope::Operator;
    match kind {
        "add_device" => p.add_device(&op, tenant, AddDevice::named(name), None).await.map(drop),
        "launch_instance" => {
            p.launch_instance(&op, tenant, LaunchInstance::named(name)?, None).await.map(drop)
        }
        "publish_app" => {
            let app =
                PublishApp { name: name.to_owned(), instance: format!("web-{tenant}"), port: 3000 };
            p.publish_app(&op, tenant, app, None).await.map(drop)
        }
        "create_database" => p.create_database(&op, tenant, name, None).await.map(drop),
        "remove_instance" => p.remove_instance(&op, tenant, name).await,
        "delete_tenant" => p.delete_tenant(&op, tenant).await,
        other => panic!("no flow {other}"),
    }
}

/// Releases the lab's Platform, starts a child on `kind`, waits until it has finished `step`
/// (as the store shows), kills it with SIGKILL, and returns the operation as the store had it.
/// The lab's Platform is then restarted: a new process on the same stores and engines.
async fn crash_child(
    lab: &mut Lab,
    kind: &str,
    step: &str,
    tenant: &OwnerId,
    name: &str,
) -> Operation {
    lab.release();
    let task = ChildTask {
        spec: lab.spec.clone(),
        kind: kind.into(),
        step: step.into(),
        tenant: tenant.clone(),
        name: name.into(),
    };
    let exe = std::env::current_exe().expect("test binary");
    let mut child = std::process::Command::new(exe)
        .args(["--exact", "crash::child_process", "--nocapture", "--test-threads=1"])
        .env(CHILD, serde_json::to_string(&task).expect("json"))
        .stdout(Stdio::null())
        .spawn()
        .expect("child");
    let deadline = Instant::now() + Duration::from_secs(60);
    let op = loop {
        let ops =
            lab.store.list_operations(&Scope::Operator, Some(tenant), None, 5).await.expect("ops");
        let reached = ops.into_iter().find(|o| {
            o.kind == kind
                && o.state == OpState::Running
                && o.steps.iter().any(|s| s.name == step && s.state == StepState::Done)
        });
        if let Some(op) = reached {
            break op;
        }
        assert!(child.try_wait().expect("child").is_none(), "the child ended before {kind}/{step}");
        assert!(Instant::now() < deadline, "the child never reached {kind}/{step}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The fault pauses right after the step is saved; SIGKILL, as a crash.
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    lab.restart().await;
    op
}

/// The restarted Platform's reaper ends the operation once the dead holder's lease passed.
async fn converge(lab: &Lab, id: uuid::Uuid) -> Operation {
    let platform = lab.platform();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        platform.reap().await.expect("reap");
        let op = platform.store().get_operation(&Scope::Operator, id).await.expect("op");
        if op.state.is_final() {
            return op;
        }
        assert!(Instant::now() < deadline, "the operation never ended: {op:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_at_every_step_converges() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let Some(mut lab) = Lab::start().await else { return };
    let alice = lab.tenant_of("alice").await;
    let op = Scope::Operator;
    let making: [(&str, &[&str], String); 3] = [
        ("add_device", &["lease", "interface", "firewall"], "laptop".to_owned()),
        ("launch_instance", &["container", "firewall", "route"], format!("app-{alice}")),
        ("create_database", &["database"], "shop".to_owned()),
    ];
    for (kind, steps, name) in making {
        for step in steps {
            let before = lab.footprint(&alice).await;
            let crashed = crash_child(&mut lab, kind, step, &alice, &name).await;
            let ended = converge(&lab, crashed.id).await;
            assert_eq!(ended.state, OpState::Compensated, "{kind} killed after {step}: {ended:?}");
            assert_eq!(
                lab.footprint(&alice).await,
                before,
                "{kind} killed after {step}: what was left"
            );
            // Nothing of the dead attempt blocks (or doubles) a new one.
            run_flow(lab.platform(), kind, &alice, &name)
                .await
                .unwrap_or_else(|e| panic!("{kind} again after the crash: {e}"));
            match kind {
                "add_device" => {
                    lab.platform().revoke_device(&op, &alice, &name).await.expect("revoke")
                }
                "launch_instance" => {
                    lab.platform().remove_instance(&op, &alice, &name).await.expect("remove")
                }
                _ => lab.platform().drop_database(&op, &alice, &name).await.expect("drop"),
            }
        }
    }
    // An app: its instance is there for real.
    let web = format!("web-{alice}");
    lab.platform()
        .launch_instance(&op, &alice, LaunchInstance::named(&web).expect("req"), None)
        .await
        .expect("launch");
    for step in ["record", "route"] {
        let before = lab.footprint(&alice).await;
        let crashed =
            crash_child(&mut lab, "publish_app", step, &alice, &format!("shop-{alice}")).await;
        assert_eq!(converge(&lab, crashed.id).await.state, OpState::Compensated);
        assert_eq!(lab.footprint(&alice).await, before, "publish_app killed after {step}");
    }
    // Removals are finished, not undone.
    for step in ["mark", "container"] {
        let crashed = crash_child(&mut lab, "remove_instance", step, &alice, &web).await;
        assert_eq!(
            converge(&lab, crashed.id).await.state,
            OpState::Succeeded,
            "remove killed after {step}"
        );
        let left = lab.footprint(&alice).await;
        assert_eq!(
            (left.containers, left.routes, left.objects),
            (0, 0, 0),
            "remove killed after {step}: {left:?}"
        );
        lab.platform()
            .launch_instance(&op, &alice, LaunchInstance::named(&web).expect("req"), None)
            .await
            .expect("launch again");
    }
    lab.platform().add_device(&op, &alice, AddDevice::named("phone"), None).await.expect("device");
    let crashed = crash_child(&mut lab, "delete_tenant", "instances", &alice, "").await;
    assert_eq!(converge(&lab, crashed.id).await.state, OpState::Succeeded);
    let gone = lab.footprint(&alice).await;
    assert_eq!(
        (gone.containers, gone.peer_rows, gone.leases, gone.objects),
        (0, 0, 0, 0),
        "{gone:?}"
    );
    assert!(lab.platform().store().get_tenant(&op, &alice).await.is_err(), "the tenant is gone");
}
