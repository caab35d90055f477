//! Transactions of the PostgreSQL store killed in their middle (their backend terminated while
//! a later statement waits on a lock another connection holds, as when the process dies or
//! its connection drops): every earlier write of the transaction is gone with it.

use std::time::Duration;

use chrono::Utc;
use kws::{
    core::{DnsLabel, OwnerId},
    platform::{
        Error, Role, Scope,
        store::{Begun, Kind, NewObject, NewOperation, PlatformStore, PostgresStore, Quotas, User},
    },
};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::postgres_store;

fn id(raw: &str) -> OwnerId {
    OwnerId::parse(raw).expect("owner id")
}

fn operation(tenant: &OwnerId, key: &str) -> NewOperation {
    let now = Utc::now();
    NewOperation {
        tenant: tenant.clone(),
        kind: "launch_instance".into(),
        target: "web".into(),
        idempotency_key: Some(key.into()),
        request_hash: "h".into(),
        request: serde_json::json!({}),
        deadline: now + chrono::Duration::hours(1),
        holder: "test".into(),
        lease_until: now + chrono::Duration::minutes(10),
    }
}

/// Terminates the one backend of this database that waits on a lock, once it waits.
async fn kill_the_waiter(admin: &mut PgConnection) {
    for _ in 0..500 {
        let waiting: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
        )
        .fetch_all(&mut *admin)
        .await
        .expect("pg_stat_activity");
        if let [pid] = waiting[..] {
            let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .fetch_one(&mut *admin)
                .await
                .expect("pg_terminate_backend");
            assert!(killed, "the waiting backend {pid} was not terminated");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no backend came to wait on the held lock");
}

/// A begin killed after it inserted its operation, while its idempotency key waits on another
/// transaction's insert of the same key, records no operation; a retry then does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_begin_killed_before_its_key_leaves_no_operation() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let store = postgres_store(&db).await;
    let tenant = id("killed-begin");
    store
        .create_tenant(&Scope::Operator, tenant.clone(), "T".into(), Quotas::default())
        .await
        .expect("tenant");
    let mut holder = PgConnection::connect(db.url()).await.expect("connect");
    sqlx::query("BEGIN").execute(&mut holder).await.expect("begin");
    let other = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO kws_platform.operations (id, tenant, kind, target, request_hash, request, \
         state, steps, result, deadline, cancel_requested, created_at, updated_at, version) \
         VALUES ($1, $2, 'k', 't', 'other', '{}', 'running', '[]', 'null', now(), false, now(), \
         now(), 1)",
    )
    .bind(other)
    .bind(tenant.as_str())
    .execute(&mut holder)
    .await
    .expect("the holder's operation");
    sqlx::query("INSERT INTO kws_platform.idempotency_keys VALUES ($1, 'key', $2)")
        .bind(tenant.as_str())
        .bind(other)
        .execute(&mut holder)
        .await
        .expect("the holder's key");

    let waiting = {
        let (store, tenant) = (store.clone(), tenant.clone());
        tokio::spawn(async move {
            store.begin_operation(&Scope::Operator, operation(&tenant, "key")).await
        })
    };
    let mut admin = PgConnection::connect(db.url()).await.expect("connect");
    kill_the_waiter(&mut admin).await;
    let killed = waiting.await.expect("the begin's task");
    assert!(matches!(killed, Err(Error::Backend { .. })), "a killed begin: {killed:?}");
    sqlx::query("ROLLBACK").execute(&mut holder).await.expect("rollback");

    let listed = store.list_operations(&Scope::Operator, Some(&tenant), None, 10).await;
    assert!(listed.expect("list").is_empty(), "the killed begin left its operation");
    let retried = store.begin_operation(&Scope::Operator, operation(&tenant, "key")).await;
    assert!(matches!(retried, Ok(Begun::New(_))), "the retry: {retried:?}");
}

/// A tenant deletion killed after it deleted the jobs and keys, while the cascade to its
/// members waits on a member row another transaction locked, leaves the tenant whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_deletion_killed_midway_leaves_the_tenant_whole() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let store: PostgresStore = postgres_store(&db).await;
    let op = Scope::Operator;
    let tenant = id("killed-delete");
    store.create_tenant(&op, tenant.clone(), "T".into(), Quotas::default()).await.expect("tenant");
    let user = User {
        name: DnsLabel::parse("member").expect("label"),
        display_name: "M".into(),
        operator: false,
        created_at: Utc::now(),
    };
    store.create_user(&op, user.clone()).await.expect("user");
    store.put_member(&op, &tenant, &user.name, Role::Member).await.expect("member");
    for name in ["job0", "job1"] {
        let job = NewObject {
            kind: Kind::Job,
            tenant: tenant.clone(),
            name: DnsLabel::parse(name).expect("label"),
            unique: None,
            claims: Default::default(),
            spec: serde_json::json!({}),
            origin: None,
        };
        store.create_object(&op, job).await.expect("job");
    }
    let Begun::New(first) =
        store.begin_operation(&op, operation(&tenant, "key")).await.expect("begin")
    else {
        panic!("a first begin with a key is new");
    };

    let mut holder = PgConnection::connect(db.url()).await.expect("connect");
    sqlx::query("BEGIN").execute(&mut holder).await.expect("begin");
    sqlx::query("SELECT 1 FROM kws_platform.members WHERE tenant = $1 FOR UPDATE")
        .bind(tenant.as_str())
        .execute(&mut holder)
        .await
        .expect("lock the member row");
    let waiting = {
        let (store, tenant) = (store.clone(), tenant.clone());
        tokio::spawn(async move { store.delete_tenant(&Scope::Operator, &tenant).await })
    };
    let mut admin = PgConnection::connect(db.url()).await.expect("connect");
    kill_the_waiter(&mut admin).await;
    let killed = waiting.await.expect("the deletion's task");
    assert!(matches!(killed, Err(Error::Backend { .. })), "a killed deletion: {killed:?}");
    sqlx::query("ROLLBACK").execute(&mut holder).await.expect("rollback");

    store.get_tenant(&op, &tenant).await.expect("the killed deletion removed the tenant");
    assert_eq!(store.usage(&op, &tenant).await.expect("usage").jobs, 2, "jobs were removed");
    assert_eq!(store.members(&op, &tenant).await.expect("members").len(), 1, "members removed");
    let again = store.begin_operation(&op, operation(&tenant, "key")).await.expect("begin");
    let Begun::Existing(found) = again else { panic!("the killed deletion removed the key") };
    assert_eq!(found.id, first.id, "the key finds the first operation");
    store.delete_tenant(&op, &tenant).await.expect("the deletion, run again, finishes");
}
