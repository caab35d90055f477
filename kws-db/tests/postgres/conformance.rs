//! The testkit's checks, each run on the backend itself and through a
//! `Box<dyn DatabaseProvisioner>`; the eight proofs the issue lists are `t1` to `t8`.

use kws_db::{
    DatabaseProvisioner, DatabaseProvisionerExt, Error, postgres::PostgresProvisioner, testkit,
};
use sqlx::Row;

use crate::support::Fixture;

macro_rules! both_ways {
    ($check:path, $p:expr $(, $arg:expr)*) => {{
        let p: PostgresProvisioner = $p;
        $check(&p $(, $arg)*).await;
        let boxed: Box<dyn DatabaseProvisioner> = Box::new(p);
        $check(&*boxed $(, $arg)*).await;
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t1_tenant_uses_its_database_with_the_returned_url() {
    let Some(fx) = Fixture::new().await else { return };
    both_ways!(testkit::tenant_uses_its_database, fx.provisioner(5).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t2_tenant_cannot_connect_to_another_tenants_database() {
    let Some(fx) = Fixture::new().await else { return };
    both_ways!(testkit::cannot_connect_to_another_tenants_database, fx.provisioner(5).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t3_tenant_cannot_create_a_database_or_a_role() {
    let Some(fx) = Fixture::new().await else { return };
    both_ways!(testkit::cannot_create_databases_or_roles, fx.provisioner(5).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t4_tenant_cannot_read_pg_authid() {
    let Some(fx) = Fixture::new().await else { return };
    both_ways!(testkit::cannot_read_pg_authid, fx.provisioner(5).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t5_tenant_cannot_reach_other_tenants_objects() {
    let Some(fx) = Fixture::new().await else { return };
    both_ways!(testkit::cannot_reach_other_tenants_objects, fx.provisioner(5).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t6_drop_works_while_the_tenant_is_connected() {
    let Some(fx) = Fixture::new().await else { return };
    both_ways!(testkit::drop_works_while_connected, fx.provisioner(5).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t7_rotate_password_retires_the_old_one() {
    let Some(fx) = Fixture::new().await else { return };
    both_ways!(testkit::rotation_replaces_the_password, fx.provisioner(5).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t8_the_quota_is_enforced() {
    let Some(fx) = Fixture::new().await else { return };
    both_ways!(testkit::quota_is_enforced, fx.provisioner(2).await, 2);
    both_ways!(testkit::concurrent_creates_respect_the_quota, fx.provisioner(2).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_unknown_names_and_races() {
    let Some(fx) = Fixture::new().await else { return };
    both_ways!(testkit::duplicates_are_refused, fx.provisioner(5).await);
    both_ways!(testkit::unknown_names_are_not_found, fx.provisioner(5).await);
    both_ways!(testkit::concurrent_creates_of_one_name, fx.provisioner(5).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_are_typed_errors_and_leave_nothing_on_the_server() {
    let Some(fx) = Fixture::new().await else { return };
    both_ways!(testkit::hostile_names_create_nothing, fx.provisioner(5).await);
    let p = fx.provisioner(5).await;
    let owner = testkit::unique_owner("hostile");
    let mut admin = fx.admin().await;
    for raw in ["x\"; DROP ROLE postgres; --", "a'b", "a b", "UPPER", &"n".repeat(64)] {
        let result = p.create_named(owner.as_str(), raw).await;
        assert!(matches!(result, Err(Error::InvalidName(_) | Error::Uppercase { .. })), "{raw:?}");
    }
    let like = format!("kws_{owner}%");
    let left = sqlx::query(
        "SELECT (SELECT count(*) FROM pg_roles WHERE rolname LIKE $1) AS roles, \
                (SELECT count(*) FROM pg_database WHERE datname LIKE $1) AS dbs, \
                (SELECT count(*) FROM kws_db.databases WHERE owner = $2) AS rows, \
                (SELECT count(*) FROM pg_roles WHERE rolname = 'postgres') AS postgres",
    )
    .bind(&like)
    .bind(owner.as_str())
    .fetch_one(&mut admin)
    .await
    .expect("count");
    let counts: [i64; 4] = ["roles", "dbs", "rows", "postgres"].map(|c| left.get(c));
    assert_eq!(counts, [0, 0, 0, 1]);
}
