//! The flows the other tests use least, on the real parts: stop (and reconcile keeping it
//! stopped), start, restart and redeploy (identity, workspace and address kept); a database's
//! password rotated (the old one refused, the new one works); code submitted through the exec
//! engine under the tenant's rate limit, its events streamed, another tenant's job not found.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::StreamExt;
use kws::{
    exec::{ExecConfig, ExecEngine, JobEvent, Language, Languages, RateLimit},
    platform::{
        Backend, ErrorKind, LaunchInstance, Platform, Redeploy, Role, Scope, SubmitJob,
        model::{InstanceSpec, JobSpec, RunState},
        store::PlatformStoreExt,
    },
    runtime::{ExecRequest, InstanceKey},
};
use sqlx::{Connection, postgres::PgConnectOptions};

use super::lab::Lab;

fn sh(script: &str) -> ExecRequest {
    ExecRequest::new(["sh", "-c", script])
}

async fn state(p: &Platform, tenant: &kws::core::OwnerId, name: &str) -> RunState {
    let seen = p.store().get::<InstanceSpec>(&Scope::Operator, tenant, name).await.expect("get");
    seen.status.value.expect("observed").state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn actions_keep_identity_workspace_and_address() {
    let Some(lab) = Lab::start().await else { return };
    let alice = lab.tenant_of("alice").await;
    let op = Scope::Operator;
    let p = lab.platform();
    let name = format!("life-{alice}");
    let made = p
        .launch_instance(&op, &alice, LaunchInstance::named(&name).expect("req"), None)
        .await
        .expect("launch");
    let key = InstanceKey::new(alice.clone(), name.parse().expect("name"));
    let runtime = p.runtime().expect("runtime");
    runtime.exec(&key, sh("echo kept > /workspace/file")).await.expect("write");

    p.stop_instance(&op, &alice, &name).await.expect("stop");
    assert_eq!(state(p, &alice, &name).await, RunState::Exited);
    let report = p.reconcile().await.expect("reconcile");
    assert!(report.instances_started.is_empty(), "a stopped instance stays stopped: {report:?}");
    p.start_instance(&op, &alice, &name).await.expect("start");
    assert_eq!(state(p, &alice, &name).await, RunState::Running);
    let before = runtime.inspect(&key).await.expect("inspect").started_at;
    p.restart_instance(&op, &alice, &name).await.expect("restart");
    let after = runtime.inspect(&key).await.expect("inspect");
    assert!(after.started_at > before, "restarted");

    let env = BTreeMap::from([("GREETING".to_owned(), "hello".to_owned())]);
    let change = Redeploy { env: Some(env), ..Redeploy::default() };
    let redeployed = p.redeploy_instance(&op, &alice, &name, change).await.expect("redeploy");
    assert_eq!(redeployed.meta.id, made.meta.id, "the same instance");
    assert_eq!(redeployed.spec.address, made.spec.address, "the same address");
    assert_eq!(redeployed.spec.env.get("GREETING").map(String::as_str), Some("hello"));
    let out = runtime.exec(&key, sh("cat /workspace/file; echo $GREETING")).await.expect("exec");
    assert_eq!(
        out.stdout_text(),
        "kept\nhello\n",
        "the workspace stayed, the new environment is in"
    );
    let (ok, page) = lab.https_get(&name, "/");
    assert!(ok && page.contains("kws IDE stand-in"), "the IDE route still serves: {page}");
    // A bad image fails the redeploy and leaves the instance running as it was.
    let bad =
        Redeploy { image: Some("kws-test/no-such-image:0".to_owned()), ..Redeploy::default() };
    assert!(p.redeploy_instance(&op, &alice, &name, bad).await.is_err());
    assert_eq!(state(p, &alice, &name).await, RunState::Running);
    assert_eq!(
        runtime.exec(&key, sh("cat /workspace/file")).await.expect("exec").stdout_text(),
        "kept\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotated_password_replaces_the_old_one() {
    let Some(lab) = Lab::start().await else { return };
    let alice = lab.tenant_of("alice").await;
    let p = lab.platform();
    let first = p.create_database(&Scope::Operator, &alice, "shop", None).await.expect("create");
    let old = first.credentials.expect("credentials");
    let new = p.rotate_database_password(&Scope::Operator, &alice, "shop").await.expect("rotate");
    let new = new.credentials.expect("credentials");
    assert_ne!(old.password.expose(), new.password.expose());
    // From the machine, straight to the server (the credentials name the namespace's address).
    let server: PgConnectOptions = lab.db.admin_url().parse().expect("url");
    let connect = |password: String| {
        let options =
            server.clone().username(&new.role).password(&password).database(&new.database);
        async move { sqlx::PgConnection::connect_with(&options).await }
    };
    assert!(
        connect(old.password.expose().to_owned()).await.is_err(),
        "the old password is refused"
    );
    let conn = connect(new.password.expose().to_owned()).await.expect("the new password works");
    conn.close().await.expect("close");
    let bob = Scope::tenant(lab.tenant_of("bob").await, Role::Admin);
    let hidden = p.rotate_database_password(&bob, &alice, "shop").await.map(drop);
    assert_eq!(hidden.expect_err("bob").kind(), ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_stream_their_output_under_the_tenants_rate_limit() {
    let Some(mut lab) = Lab::start().await else { return };
    let alice = lab.tenant_of("alice").await;
    let bob = lab.tenant_of("bob").await;
    // A Platform with an exec engine on the lab's engine: one warm sh sandbox, a bucket of 3.
    lab.release();
    let mut parts = lab.spec.parts(|_| {}).await;
    let config = ExecConfig {
        languages: Languages::new([Language::sh()]).expect("languages"),
        pool_size: 1,
        rate: RateLimit { per_second: 0.1, burst: 3 },
        labels: kws_testenv::test_labels(),
        ..ExecConfig::default()
    };
    let engine = ExecEngine::start(lab.engine.client().clone(), config).await.expect("engine");
    parts.exec = Backend::Ready(Arc::new(engine));
    let p = Platform::new(parts);
    let member = Scope::tenant(alice.clone(), Role::Member);
    let job = |source: &str| SubmitJob {
        language: "sh".into(),
        source: source.into(),
        stdin: String::new(),
        wall_time_ms: None,
        output_bytes: None,
    };
    let key = Some("run-1");
    let submitted = p
        .submit_job(&member, &alice, job("echo hi; exit 3"), Some("alice"), key)
        .await
        .expect("submit");
    let id = submitted.meta.name.to_string();
    let mut events = p.job_events(&member, &alice, &id).await.expect("events");
    let mut out = Vec::new();
    let mut code = None;
    while let Some(event) =
        tokio::time::timeout(Duration::from_secs(30), events.next()).await.expect("events in time")
    {
        match event {
            JobEvent::Stdout(bytes) => out.extend(bytes),
            JobEvent::Exited { code: c, .. } => code = Some(c),
            _ => {}
        }
    }
    assert_eq!((String::from_utf8_lossy(&out).as_ref(), code), ("hi\n", Some(3)));
    // The history records how it ended.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = p.store().get::<JobSpec>(&member, &alice, &id).await.expect("job");
        if seen.status.value.as_ref().is_some_and(|s| s.state == "exited" && s.exit_code == Some(3))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the history never showed the end: {:?}",
            seen.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The key again: the same job, nothing run again (and the bucket not charged: the two
    // below still fit); the key with other code is refused.
    let again = p
        .submit_job(&member, &alice, job("echo hi; exit 3"), Some("alice"), key)
        .await
        .expect("again");
    assert_eq!(again.meta.name.as_str(), id);
    let other = p.submit_job(&member, &alice, job("echo bye"), Some("alice"), key).await.map(drop);
    assert_eq!(other.expect_err("another body").kind(), ErrorKind::IdempotencyMismatch);
    // Another tenant's job is not found; the bucket of 3 allows two more, then refuses.
    let bob_scope = Scope::tenant(bob.clone(), Role::Admin);
    let hidden = p.job_events(&bob_scope, &alice, &id).await.map(drop);
    assert_eq!(hidden.expect_err("bob").kind(), ErrorKind::NotFound);
    let hidden = p.job_events(&bob_scope, &bob, &id).await.map(drop);
    assert_eq!(hidden.expect_err("bob's own tenant").kind(), ErrorKind::NotFound);
    for _ in 0..2 {
        p.submit_job(&member, &alice, job("true"), None, None).await.expect("within the bucket");
    }
    let limited = p.submit_job(&member, &alice, job("true"), None, None).await.map(drop);
    assert_eq!(limited.expect_err("over the bucket").kind(), ErrorKind::RateLimited);
    let others = p.submit_job(&bob_scope, &bob, job("true"), None, None).await;
    assert!(others.is_ok(), "bob has a bucket of his own");
    let unknown = p
        .submit_job(&member, &alice, SubmitJob { language: "cobol".into(), ..job("x") }, None, None)
        .await
        .map(drop);
    assert_eq!(unknown.expect_err("language").kind(), ErrorKind::Invalid);
}
