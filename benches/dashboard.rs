//! The dashboard's server time: the overview and the instance list of a tenant with 100
//! instances, rendered through the whole application (session check, the tenant's scope, the
//! store, the templates, the security headers), on the embedded parts, in process.
//!
//! `cargo bench --bench dashboard --features server`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::net::{IpAddr, Ipv4Addr};

use axum::{
    body::{Body, to_bytes},
    http::{Request, StatusCode, header},
};
use criterion::{Criterion, criterion_group, criterion_main};
use kws::{
    core::OwnerId,
    http::{AppState, HttpSettings},
    platform::{LaunchInstance, Platform, Role, Scope, store::Quotas},
};
use kws_accounts::{Accounts, Secret};
use tokio::runtime::Runtime;
use tower::ServiceExt as _;

const INSTANCES: usize = 100;

/// The application with tenant `acme` of 100 running instances, and the cookie of its admin.
async fn setup() -> (axum::Router, String) {
    let platform = Platform::embedded().await.expect("embedded platform");
    let accounts = Accounts::memory();
    let op = Scope::Operator;
    let tenant = OwnerId::parse("acme").expect("id");
    platform
        .create_tenant(&op, tenant.clone(), "Acme", Some(Quotas::default()))
        .await
        .expect("tenant");
    let user = platform.create_user(&op, "alice", "Alice", false).await.expect("user");
    let password = Secret::new("alice-password-123");
    accounts.set_password(&user.name, &password).await.expect("password");
    platform.set_member(&op, &tenant, "alice", Role::Admin).await.expect("member");
    for i in 0..INSTANCES {
        let request = LaunchInstance::named(&format!("web-{i:03}")).expect("request");
        platform.launch_instance(&op, &tenant, request, None).await.expect("launch");
    }
    let from = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let begun = accounts.login("alice", &password, from).await.expect("login");
    let state = AppState::new(platform, accounts, HttpSettings::default());
    (kws::web::app(state), format!("kws_session={}", begun.secret.expose()))
}

async fn page(app: &axum::Router, cookie: &str, path: &str) -> usize {
    let request =
        Request::get(path).header(header::COOKIE, cookie).body(Body::empty()).expect("request");
    let response = app.clone().oneshot(request).await.expect("answer");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    to_bytes(response.into_body(), usize::MAX).await.expect("body").len()
}

fn dashboard(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let (app, cookie) = rt.block_on(setup());
    let mut group = c.benchmark_group("dashboard");
    for (name, path) in
        [("overview_100_instances", "/t/acme"), ("instances_100", "/t/acme/instances")]
    {
        let bytes = rt.block_on(page(&app, &cookie, path));
        eprintln!("{path}: {bytes} bytes of HTML with {INSTANCES} instances");
        group.bench_function(name, |b| b.to_async(&rt).iter(|| page(&app, &cookie, path)));
    }
    group.finish();
}

criterion_group!(benches, dashboard);
criterion_main!(benches);
