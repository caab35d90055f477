//! Objects: records round-trip, names and unique keys are unique (also under concurrency),
//! versions fence spec writes and observations never go back in time, and lookups by names no
//! object can have are `NotFound`.

use chrono::Duration;
use futures::future::join_all;
use serde_json::json;
use uuid::Uuid;

use super::{
    begin, conflict, fails, fresh, make_tenant, new_object, new_operation, not_found, now_micros,
};
use crate::platform::{
    Error, ErrorKind, Scope,
    store::{Claims, Kind, NewObject, ObjectRecord, Page, PlatformStore, Quotas},
};

/// Every field of an object and of an operation comes back as it went in: any JSON value
/// (nested, unicode, a NUL character, the largest integers), the unique key, the claims, the
/// origin; `status` starts `null` (unknown), versions start at 1.
pub async fn records_round_trip(store: &dyn PlatformStore) {
    let op = Scope::Operator;
    let stem = fresh("records");
    let quotas =
        Quotas { instances: Some(u64::MAX), cpu_millis: Some(1 << 40), ..Quotas::default() };
    let t = make_tenant(store, &stem, quotas).await;
    let tenant = store.get_tenant(&op, &t).await.expect("get_tenant");
    assert_eq!((tenant.quotas, tenant.version), (quotas, 1), "tenant quotas and version");
    assert!(tenant.created_at <= tenant.updated_at, "tenant times");

    let origin = Uuid::now_v7();
    let spec = json!({
        "image": "kws-test/busybox:1",
        "env": { "A": "é ✓ \u{0} \"quoted\" \\ back", "EMPTY": "" },
        "ports": [8080, 0, u64::MAX, i64::MIN],
        "ratio": 0.1,
        "nothing": null,
        "nested": [[], {}, [{ "deep": true }]],
    });
    let new = NewObject {
        unique: Some(format!("hostname:{stem}")),
        claims: Claims { cpu_millis: 1500, memory_mb: 2048 },
        spec: spec.clone(),
        origin: Some(origin),
        ..new_object(Kind::Instance, &t, "web")
    };
    let made = store.create_object(&op, new.clone()).await.expect("create_object");
    assert_eq!(
        (&made.meta.kind, &made.meta.tenant, &made.meta.name, made.meta.version),
        (&new.kind, &new.tenant, &new.name, 1),
        "meta"
    );
    assert_eq!((&made.unique, made.claims, &*made.spec), (&new.unique, new.claims, &spec), "body");
    assert_eq!((&*made.status, made.observed_at), (&json!(null), None), "status starts unknown");
    assert_eq!(made.origin, Some(origin), "origin");
    assert!(made.meta.created_at <= made.meta.updated_at, "object times");
    let got = store.get_object(&op, Kind::Instance, &t, "web").await.expect("get_object");
    assert_eq!(got, made, "get_object returns what create_object returned");
    let found = store.find_object(&op, made.meta.id).await.expect("find_object");
    assert_eq!(found, made, "find_object by id");
    not_found(store.find_object(&op, Uuid::now_v7()).await, "object", "find_object of no id");

    let status = json!({ "state": "running", "note": "\u{0}" });
    let at = now_micros();
    let applied = store.update_status(&op, Kind::Instance, &t, "web", status.clone(), at).await;
    assert!(applied.expect("update_status"), "a first observation applies");
    let got = store.get_object(&op, Kind::Instance, &t, "web").await.expect("get_object");
    assert_eq!((&*got.status, got.observed_at), (&status, Some(at)), "status round trip");

    let mut new_op = new_operation(&t, &stem, Some("key-1"), "hash-1");
    new_op.request = spec.clone();
    let began = begin(store, new_op.clone()).await;
    let fields = (&began.tenant, &began.kind, &began.target, &began.idempotency_key);
    let want = (&new_op.tenant, &new_op.kind, &new_op.target, &new_op.idempotency_key);
    assert_eq!(fields, want, "operation identity");
    let fields = (&began.request_hash, &began.request, began.deadline, &began.holder);
    let want = (&new_op.request_hash, &spec, new_op.deadline, &Some(new_op.holder.clone()));
    assert_eq!(fields, want, "operation request");
    assert_eq!(began.lease_until, Some(new_op.lease_until), "operation lease");
    assert_eq!(
        (began.state, began.steps.len(), &began.result, &began.error, began.version),
        (crate::platform::store::OpState::Running, 0, &json!(null), &None, 1),
        "a new operation is running, with no steps, no result, at version 1"
    );
    assert!(!began.cancel_requested, "a new operation has no cancel request");
    let got = store.get_operation(&op, began.id).await.expect("get_operation");
    assert_eq!(got, began, "get_operation returns what begin_operation returned");
    not_found(store.get_operation(&op, Uuid::now_v7()).await, "operation", "no such operation");
}

/// `(tenant, kind, name)` and the platform-wide unique key are unique: a duplicate is
/// `AlreadyExists` (of the object, or of the key's kind) and writes nothing; the same name is
/// free in another kind and another tenant; a deleted object's key is free again.
pub async fn names_and_unique_keys_are_unique(store: &dyn PlatformStore) {
    let op = Scope::Operator;
    let stem = fresh("unique");
    let a = make_tenant(store, &format!("{stem}-a"), Quotas::default()).await;
    let b = make_tenant(store, &format!("{stem}-b"), Quotas::default()).await;
    let host = |label: &str| Some(format!("hostname:{stem}-{label}"));
    let with_key =
        |tenant, kind, name, key| NewObject { unique: key, ..new_object(kind, tenant, name) };
    store
        .create_object(&op, with_key(&a, Kind::Instance, "web", host("web")))
        .await
        .expect("create");

    let twin = with_key(&a, Kind::Instance, "web", host("twin"));
    match fails(store.create_object(&op, twin).await, ErrorKind::AlreadyExists, "same name") {
        Error::AlreadyExists { kind: "instance", name } => {
            assert_eq!(name, format!("{a}/web"), "the error names tenant and object");
        }
        other => panic!("a taken name: expected AlreadyExists of an instance, got {other:?}"),
    }
    let taken = with_key(&b, Kind::Instance, "site", host("web"));
    match fails(store.create_object(&op, taken).await, ErrorKind::AlreadyExists, "same key") {
        Error::AlreadyExists { kind: "hostname", name } => {
            assert_eq!(name, format!("{stem}-web"), "the error names the hostname");
        }
        other => panic!("a taken hostname: expected AlreadyExists of a hostname, got {other:?}"),
    }
    let taken = with_key(&b, Kind::Device, "phone", Some(format!("public_key:{stem}")));
    store.create_object(&op, taken.clone()).await.expect("create a device with a key");
    let again = NewObject { name: super::label("tablet"), ..taken };
    match fails(store.create_object(&op, again).await, ErrorKind::AlreadyExists, "same key") {
        Error::AlreadyExists { kind: "public key", .. } => {}
        other => panic!("a taken public key: expected AlreadyExists of one, got {other:?}"),
    }

    // The refused creates wrote nothing: their names and keys are free.
    not_found(store.get_object(&op, Kind::Instance, &b, "site").await, "instance", "half-made");
    not_found(store.get_object(&op, Kind::Device, &b, "tablet").await, "device", "half-made");
    store
        .create_object(&op, with_key(&b, Kind::Instance, "twin", host("twin")))
        .await
        .expect("the refused duplicate name kept its unique key");
    let usage = store.usage(&op, &a).await.expect("usage");
    assert_eq!(usage.instances, 1, "a refused create counted in the usage");

    store
        .create_object(&op, new_object(Kind::App, &a, "web"))
        .await
        .expect("the same name in another kind");
    store
        .create_object(&op, with_key(&b, Kind::Instance, "web", None))
        .await
        .expect("the same name in another tenant");
    store.delete_object(&op, Kind::Instance, &a, "web", None).await.expect("delete_object");
    store
        .create_object(&op, with_key(&b, Kind::Instance, "site", host("web")))
        .await
        .expect("a deleted object's unique key is free again");
}

/// Of concurrent creates of one name (and of concurrent creates of one unique key in several
/// tenants), spread over `stores`, exactly one wins; the others are `AlreadyExists`.
pub async fn concurrent_creates_of_one_name_have_one_winner(stores: &[&dyn PlatformStore]) {
    let op = Scope::Operator;
    let store = |i: usize| stores[i % stores.len()];
    let stem = fresh("race");
    let mut tenants = Vec::new();
    for i in 0..4 {
        tenants.push(make_tenant(store(0), &format!("{stem}-{i}"), Quotas::default()).await);
    }
    let same_name = (0..24).map(|i| {
        let new = NewObject {
            unique: Some(format!("hostname:{stem}-n{i}")),
            ..new_object(Kind::Instance, &tenants[0], "contested")
        };
        store(i).create_object(&op, new)
    });
    assert_one_winner(join_all(same_name).await, "concurrent creates of one name");
    let same_key = (0..24).map(|i| {
        let new = NewObject {
            unique: Some(format!("hostname:{stem}-shared")),
            ..new_object(Kind::App, &tenants[i % tenants.len()], &format!("app{i}"))
        };
        store(i).create_object(&op, new)
    });
    assert_one_winner(join_all(same_key).await, "concurrent creates of one unique key");
    let mut stored = 0;
    for tenant in &tenants {
        stored += store(1).usage(&op, tenant).await.expect("usage").apps;
    }
    assert_eq!(stored, 1, "concurrent creates of one unique key stored {stored} apps");
}

#[track_caller]
fn assert_one_winner(results: Vec<Result<ObjectRecord, Error>>, rule: &str) {
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{rule}: {won} won");
    for result in results.into_iter().filter(Result::is_err) {
        fails(result, ErrorKind::AlreadyExists, rule);
    }
}

/// Each spec write bumps the version and a stale one is `Conflict` that changes nothing (also
/// for deletes at a version); status writes keep the version, and apply only when not older
/// than the stored observation (an observation of the same instant applies). Tenants too.
pub async fn versions_fence_spec_writes(store: &dyn PlatformStore) {
    let op = Scope::Operator;
    let stem = fresh("versions");
    let t = make_tenant(store, &stem, Quotas::default()).await;
    store.create_object(&op, new_object(Kind::Instance, &t, "web")).await.expect("create");
    let claims = Claims { cpu_millis: 100, memory_mb: 64 };
    let spec = |n: u32| json!({ "revision": n });
    let update =
        |version, n| store.update_spec(&op, Kind::Instance, &t, "web", version, spec(n), claims);
    let v2 = update(1, 2).await.expect("update_spec at the current version");
    assert_eq!((v2.meta.version, &*v2.spec, v2.claims), (2, &spec(2), claims), "update_spec");
    assert!(v2.meta.updated_at >= v2.meta.created_at, "updated_at moves with the spec");
    conflict(update(1, 3).await, 1, 2, "update_spec at a stale version");
    conflict(update(u64::MAX, 3).await, u64::MAX, 2, "update_spec at a version never reached");
    let kept = store.get_object(&op, Kind::Instance, &t, "web").await.expect("get_object");
    assert_eq!(kept, v2, "a stale update_spec wrote");

    let t1 = now_micros();
    let observe = |status, at| store.update_status(&op, Kind::Instance, &t, "web", status, at);
    assert!(observe(json!("running"), t1).await.expect("update_status"), "first observation");
    let older = observe(json!("stale"), t1 - Duration::seconds(5)).await;
    assert!(!older.expect("update_status"), "an older observation applied");
    assert!(observe(json!("same instant"), t1).await.expect("update_status"), "a tie applies");
    let t2 = t1 + Duration::seconds(1);
    assert!(observe(json!(null), t2).await.expect("update_status"), "unknown is an observation");
    let seen = store.get_object(&op, Kind::Instance, &t, "web").await.expect("get_object");
    assert_eq!((&*seen.status, seen.observed_at), (&json!(null), Some(t2)), "latest observation");
    assert_eq!(seen.meta, v2.meta, "update_status changed the version or the spec's times");
    let v3 = update(2, 3).await.expect("status writes do not conflict with a spec write");
    assert_eq!((v3.meta.version, &*v3.status), (3, &json!(null)), "update_spec keeps the status");
    let missing = store.update_status(&op, Kind::App, &t, "web", json!(1), t2).await;
    not_found(missing, "app", "update_status of no object");
    let missing = store.update_spec(&op, Kind::App, &t, "web", 1, spec(1), claims).await;
    not_found(missing, "app", "update_spec of no object");

    let deleted = store.delete_object(&op, Kind::Instance, &t, "web", Some(2)).await;
    conflict(deleted, 2, 3, "delete_object at a stale version");
    store.get_object(&op, Kind::Instance, &t, "web").await.expect("a stale delete deleted");
    let deleted = store.delete_object(&op, Kind::Instance, &t, "web", Some(3)).await;
    assert_eq!(deleted.expect("delete_object"), v3, "delete_object returns what it deleted");
    not_found(store.get_object(&op, Kind::Instance, &t, "web").await, "instance", "deleted");
    let again = store.delete_object(&op, Kind::Instance, &t, "web", None).await;
    not_found(again, "instance", "delete_object of no object");

    let quotas = Quotas { apps: Some(3), ..Quotas::default() };
    let renamed = store.update_tenant(&op, &t, 1, "Renamed".into(), quotas).await;
    let renamed = renamed.expect("update_tenant at the current version");
    assert_eq!((renamed.version, renamed.quotas), (2, quotas), "update_tenant");
    let stale = store.update_tenant(&op, &t, 1, "Stale".into(), Quotas::default()).await;
    conflict(stale, 1, 2, "update_tenant at a stale version");
    let kept = store.get_tenant(&op, &t).await.expect("get_tenant");
    assert_eq!(kept, renamed, "a stale update_tenant wrote");
    let gone = super::owner(&format!("{stem}-gone"));
    let missing = store.update_tenant(&op, &gone, 1, "None".into(), Quotas::default()).await;
    not_found(missing, "tenant", "update_tenant of no tenant");
}

/// Names arrive typed, so hostile strings are not the store's to refuse: a lookup or write by
/// a name no object can have (quotes, `;`, NUL, `/`, `..`, uppercase, too long, empty) is
/// plainly `NotFound` (no backend error) and changes nothing, and a page cursor with such a
/// name works like any other.
pub async fn lookups_by_impossible_names_are_not_found(store: &dyn PlatformStore) {
    let op = Scope::Operator;
    let stem = fresh("hostile");
    let t = make_tenant(store, &stem, Quotas::default()).await;
    let web =
        store.create_object(&op, new_object(Kind::Instance, &t, "web")).await.expect("create");
    let long = "a".repeat(300);
    let names = [
        "",
        "WEB",
        "Web",
        "web\0",
        "\0",
        "web'; DROP TABLE objects; --",
        "web\"",
        "../web",
        "we/b",
        "$(id)",
        "`id`",
        "web\n",
        "web ",
        "wéb",
        "%",
        "_",
        &long,
    ];
    for name in names {
        let rule = format!("a lookup by {:?}", name.escape_debug().to_string());
        not_found(store.get_object(&op, Kind::Instance, &t, name).await, "instance", &rule);
        let spec =
            store.update_spec(&op, Kind::Instance, &t, name, 1, json!({}), Claims::default()).await;
        not_found(spec, "instance", &rule);
        let status =
            store.update_status(&op, Kind::Instance, &t, name, json!(1), now_micros()).await;
        not_found(status, "instance", &rule);
        let deleted = store.delete_object(&op, Kind::Instance, &t, name, Some(1)).await;
        not_found(deleted, "instance", &rule);
        let page = Page { after: Some((t.clone(), name.to_owned())), limit: 10 };
        let listed = store.list_objects(&op, Kind::Instance, Some(&t), &page).await;
        let listed = listed.unwrap_or_else(|e| panic!("{rule}: a page after it: {e}"));
        let want: Vec<&str> = if "web" > name { vec!["web"] } else { vec![] };
        let names: Vec<&str> = listed.iter().map(|r| r.meta.name.as_str()).collect();
        assert_eq!(names, want, "{rule}: a page after it holds the names after it");
    }
    let kept = store.get_object(&op, Kind::Instance, &t, "web").await.expect("get_object");
    assert_eq!(kept, web, "a lookup by a hostile name changed the object");
}

/// `mark_deleting` stamps the object once (a second mark keeps the first time and version),
/// bumps its version so a writer who read it before gets `Conflict`, and is scoped like every
/// other write.
pub async fn marks_for_removal_are_kept(store: &dyn PlatformStore) {
    let op = Scope::Operator;
    let t = make_tenant(store, &fresh("mark"), Quotas::default()).await;
    let other = make_tenant(store, &fresh("mark-other"), Quotas::default()).await;
    let made = store.create_object(&op, new_object(Kind::App, &t, "shop")).await.expect("create");
    assert_eq!(made.meta.deleting, None, "a new object is not being removed");
    let hidden = store.mark_deleting(&super::viewer(&other), Kind::App, &t, "shop").await;
    not_found(hidden, "app", "a mark from another tenant's scope");
    let marked = store.mark_deleting(&op, Kind::App, &t, "shop").await.expect("mark");
    let at = marked.meta.deleting.expect("marked");
    assert_eq!(marked.meta.version, 2, "the mark bumps the version");
    let again =
        store.mark_deleting(&super::viewer(&t), Kind::App, &t, "shop").await.expect("mark again");
    assert_eq!(
        (again.meta.deleting, again.meta.version),
        (Some(at), 2),
        "a second mark changes nothing"
    );
    let stale =
        store.update_spec(&op, Kind::App, &t, "shop", 1, json!({}), Claims::default()).await;
    conflict(stale, 1, 2, "a write from before the mark");
    let read = store.get_object(&op, Kind::App, &t, "shop").await.expect("get");
    assert_eq!(read.meta.deleting, Some(at), "the mark reads back");
    not_found(store.mark_deleting(&op, Kind::App, &t, "none").await, "app", "a mark of no object");
}
