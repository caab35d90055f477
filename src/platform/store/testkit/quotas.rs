//! Quotas: counts and claims are checked with the insert (also under concurrency), and grown
//! claims in `update_spec`.

use futures::future::join_all;
use serde_json::json;

use super::{fails, fresh, instance, make_tenant, new_object, over_quota};
use crate::platform::{
    ErrorKind, Scope,
    store::{Claims, Kind, PlatformStore, Quotas, TenantUsage},
};

/// A create past a count, CPU or memory quota is `QuotaExceeded` naming the resource and its
/// limit, and writes nothing; an object that claims nothing is not held back by a full CPU or
/// memory quota; jobs and unlimited kinds have no count limit; a delete makes room; usage
/// counts what was made, per tenant.
pub async fn quotas_limit_counts_and_claims(store: &dyn PlatformStore) {
    let op = Scope::Operator;
    let stem = fresh("quotas");
    let quotas = Quotas {
        instances: Some(2),
        cpu_millis: Some(1000),
        memory_mb: Some(1024),
        devices: Some(1),
        apps: Some(0),
        databases: None,
    };
    let t = make_tenant(store, &stem, quotas).await;
    let other = make_tenant(store, &format!("{stem}-other"), quotas).await;
    let create = |new| store.create_object(&op, new);
    create(instance(&t, "one", 400, 512)).await.expect("within every quota");
    let cpu = create(instance(&t, "two", 700, 0)).await;
    over_quota(cpu, "cpu_millis", 1000, "past the CPU quota");
    let memory = create(instance(&t, "two", 0, 513)).await;
    over_quota(memory, "memory_mb", 1024, "past the memory quota");
    create(instance(&t, "two", 600, 512)).await.expect("up to the quotas exactly");
    let count = create(instance(&t, "three", 0, 0)).await;
    over_quota(count, "instances", 2, "past the instance count");
    create(new_object(Kind::Device, &t, "phone")).await.expect("claims nothing: fits");
    over_quota(create(new_object(Kind::Device, &t, "tablet")).await, "devices", 1, "devices");
    over_quota(create(new_object(Kind::App, &t, "site")).await, "apps", 0, "a quota of 0");
    for i in 0..3 {
        create(new_object(Kind::Database, &t, &format!("db{i}"))).await.expect("no limit");
        create(new_object(Kind::Job, &t, &format!("job{i}"))).await.expect("jobs: no limit");
    }
    let want = TenantUsage {
        instances: 2,
        apps: 0,
        devices: 1,
        databases: 3,
        jobs: 3,
        cpu_millis: 1000,
        memory_mb: 1024,
    };
    assert_eq!(store.usage(&op, &t).await.expect("usage"), want, "usage after the refusals");
    for name in ["three", "tablet", "site"] {
        for kind in [Kind::Instance, Kind::Device, Kind::App] {
            let half = store.get_object(&op, kind, &t, name).await;
            fails(half, ErrorKind::NotFound, "a create refused by the quota wrote");
        }
    }
    create(instance(&other, "one", 1000, 1024)).await.expect("another tenant's quota is its own");
    store.delete_object(&op, Kind::Instance, &t, "one", None).await.expect("delete_object");
    create(instance(&t, "three", 400, 512)).await.expect("a delete makes room");
}

/// `update_spec` checks the claims that grow, beside the tenant's other objects: up to the
/// quota is fine, past it is `QuotaExceeded` and changes nothing; a shrink or an unchanged
/// claim always fits (the object's own count is not checked again); after the quota was
/// lowered below the usage, a claim that does not grow is not held to it.
pub async fn update_spec_checks_the_claims_that_grow(store: &dyn PlatformStore) {
    let op = Scope::Operator;
    let stem = fresh("grow");
    let quotas = Quotas {
        instances: Some(1),
        cpu_millis: Some(1000),
        memory_mb: Some(1000),
        ..Quotas::default()
    };
    let t = make_tenant(store, &stem, quotas).await;
    store.create_object(&op, instance(&t, "web", 500, 500)).await.expect("create");
    let update = |version, cpu_millis, memory_mb| {
        let claims = Claims { cpu_millis, memory_mb };
        let spec = json!({ "cpu": cpu_millis, "memory": memory_mb });
        store.update_spec(&op, Kind::Instance, &t, "web", version, spec, claims)
    };
    update(1, 1000, 500).await.expect("a grow up to the quota, at the instance count's limit");
    over_quota(update(2, 1001, 500).await, "cpu_millis", 1000, "a CPU grow past the quota");
    over_quota(update(2, 1000, 1001).await, "memory_mb", 1000, "a memory grow past the quota");
    let kept = store.get_object(&op, Kind::Instance, &t, "web").await.expect("get_object");
    let claims = Claims { cpu_millis: 1000, memory_mb: 500 };
    assert_eq!((kept.meta.version, kept.claims), (2, claims), "a refused grow wrote");
    update(2, 200, 200).await.expect("a shrink");

    let lowered = Quotas { cpu_millis: Some(100), ..quotas };
    store.update_tenant(&op, &t, 1, "Lowered".into(), lowered).await.expect("update_tenant");
    update(3, 200, 900).await.expect("a memory grow, the CPU claim unchanged past a lowered quota");
    over_quota(update(4, 300, 900).await, "cpu_millis", 100, "a CPU grow past a lowered quota");
    update(4, 200, 900).await.expect("an unchanged claim past a lowered quota");
}

/// Of many concurrent creates (spread over `stores`), only as many win as the quota allows,
/// for a count and for a claim; concurrent grows of claims in `update_spec` too.
pub async fn concurrent_creates_stay_within_quota(stores: &[&dyn PlatformStore]) {
    let op = Scope::Operator;
    let store = |i: usize| stores[i % stores.len()];
    let stem = fresh("quota-race");
    let counted = make_tenant(
        store(0),
        &format!("{stem}-n"),
        Quotas { instances: Some(5), ..Quotas::default() },
    )
    .await;
    let claimed = make_tenant(
        store(0),
        &format!("{stem}-c"),
        Quotas { cpu_millis: Some(1000), ..Quotas::default() },
    )
    .await;
    let creates = (0..30).map(|i| {
        let tenant = if i % 2 == 0 { &counted } else { &claimed };
        store(i).create_object(&op, instance(tenant, &format!("i{i}"), 300, 0))
    });
    let results = join_all(creates).await;
    let (mut won_counted, mut won_claimed) = (0, 0);
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(_) if i % 2 == 0 => won_counted += 1,
            Ok(_) => won_claimed += 1,
            Err(e) => {
                fails(Err::<(), _>(e), ErrorKind::QuotaExceeded, "concurrent creates past a quota");
            }
        }
    }
    assert_eq!(won_counted, 5, "concurrent creates under a count quota of 5");
    assert_eq!(won_claimed, 3, "concurrent creates of 300 under a CPU quota of 1000");
    let usage = store(1).usage(&op, &claimed).await.expect("usage");
    assert_eq!((usage.instances, usage.cpu_millis), (3, 900), "usage after the race");

    let grown = make_tenant(
        store(0),
        &format!("{stem}-g"),
        Quotas { cpu_millis: Some(1500), ..Quotas::default() },
    )
    .await;
    for i in 0..10 {
        let new = instance(&grown, &format!("g{i}"), 100, 0);
        store(0).create_object(&op, new).await.expect("create");
    }
    let names: Vec<String> = (0..10).map(|i| format!("g{i}")).collect();
    let grows = names.iter().enumerate().map(|(i, name)| {
        let claims = Claims { cpu_millis: 200, memory_mb: 0 };
        store(i).update_spec(&op, Kind::Instance, &grown, name, 1, json!({}), claims)
    });
    let won = join_all(grows).await.into_iter().filter(Result::is_ok).count();
    assert_eq!(won, 5, "concurrent grows of 100 with 500 of room");
    let usage = store(1).usage(&op, &grown).await.expect("usage");
    assert_eq!(usage.cpu_millis, 1500, "usage after the concurrent grows");
}
