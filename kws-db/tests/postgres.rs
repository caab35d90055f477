//! The PostgreSQL backend against a real server (`KWS_TEST_POSTGRES_URL`): the conformance
//! suite, directly and through `Box<dyn DatabaseProvisioner>`, and what only the backend can
//! show (role attributes, ACLs, SCRAM storage, atomicity of `create`, restarts).

mod support;

use kws_db::{
    DatabaseProvisioner, DatabaseProvisionerExt, Error,
    postgres::{CreateStep, PostgresProvisioner},
    testkit,
};
use sqlx::Row;
use support::{Fixture, objects};

/// Runs a testkit check on the backend itself, then through a `Box<dyn DatabaseProvisioner>`.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_has_only_login_and_the_server_keeps_only_scram() {
    let Some(fx) = Fixture::new().await else { return };
    let p = PostgresProvisioner::builder(fx.admin_options())
        .connection_limit(2)
        .build()
        .await
        .expect("provisioner");
    let owner = testkit::unique_owner("attrs");
    let name = testkit::label("attrs");
    let creds = testkit::create_ok(&p, &owner, &name).await;
    assert_eq!(creds.role, format!("kws_{owner}_{name}"));
    assert_eq!((creds.host.as_str(), creds.port), ("127.0.0.1", 55432));
    let admin_url = url::Url::parse(fx.admin_url()).expect("admin URL");
    let admin_password = admin_url.password().filter(|p| p.len() >= 4).map(str::to_owned);
    for shown in [format!("{p:?}"), format!("{creds:?}")] {
        assert!(!shown.contains(creds.password.expose()), "{shown}");
        if let Some(secret) = &admin_password {
            assert!(!shown.contains(secret.as_str()), "{shown}");
        }
    }
    let mut admin = fx.admin().await;
    let role = sqlx::query(
        "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, \
                rolbypassrls, rolinherit, rolconnlimit, rolpassword \
         FROM pg_authid WHERE rolname = $1",
    )
    .bind(&creds.role)
    .fetch_one(&mut admin)
    .await
    .expect("pg_authid row");
    assert!(role.get::<bool, _>("rolcanlogin"));
    for attr in ["rolsuper", "rolcreatedb", "rolcreaterole", "rolreplication", "rolbypassrls"] {
        assert!(!role.get::<bool, _>(attr), "{attr}");
    }
    assert_eq!(role.get::<i32, _>("rolconnlimit"), 2);
    let stored: String = role.get("rolpassword");
    assert!(stored.starts_with("SCRAM-SHA-256$"), "{stored}");
    assert!(!stored.contains(creds.password.expose()));
    let marker: Option<String> = sqlx::query_scalar(
        "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1",
    )
    .bind(&creds.role)
    .fetch_one(&mut admin)
    .await
    .expect("marker");
    assert_eq!(marker, Some(format!("kws-db {owner}/{name}")));

    // The role owns its database; PUBLIC has no privilege on it.
    let db = sqlx::query(
        "SELECT pg_get_userbyid(datdba)::text AS owner, \
                (SELECT count(*) FROM aclexplode(datacl) WHERE grantee = 0) AS public_grants, \
                datacl IS NOT NULL AS has_acl \
         FROM pg_database WHERE datname = $1",
    )
    .bind(&creds.database)
    .fetch_one(&mut admin)
    .await
    .expect("pg_database row");
    assert_eq!(db.get::<String, _>("owner"), creds.role);
    assert!(db.get::<bool, _>("has_acl"), "a NULL ACL would mean the default (PUBLIC may connect)");
    assert_eq!(db.get::<i64, _>("public_grants"), 0);

    // In the database, PUBLIC cannot create in schema public; the role can.
    let mut tenant = testkit::connect(&creds).await;
    let schema = sqlx::query(
        "SELECT (SELECT count(*) FROM pg_namespace n, aclexplode(n.nspacl) a \
                 WHERE n.nspname = 'public' AND a.grantee = 0 AND a.privilege_type = 'CREATE') \
                 AS public_create, \
                has_schema_privilege(current_user, 'public', 'CREATE') AS mine",
    )
    .fetch_one(&mut tenant)
    .await
    .expect("schema ACL");
    assert_eq!(schema.get::<i64, _>("public_create"), 0);
    assert!(schema.get::<bool, _>("mine"));
    // The connection limit holds: a second session fits, a third is refused.
    let second = testkit::connect(&creds).await;
    let code = testkit::refused_connection(&creds.url(), "a third session").await;
    assert_eq!(code, "53300", "too_many_connections");
    drop((tenant, second));
    testkit::drop_ok(&p, &owner, &name).await;
    assert_eq!(objects(&mut admin, &creds.database).await, [0, 0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_read_the_catalogue_and_its_sessions_elsewhere_end_on_drop() {
    let Some(fx) = Fixture::new().await else { return };
    let p = fx.provisioner(5).await;
    let owner = testkit::unique_owner("cat");
    let name = testkit::label("cat");
    let creds = testkit::create_ok(&p, &owner, &name).await;
    // The admin database of the test allows PUBLIC to connect (as `postgres` does by default),
    // so the tenant gets in; the catalogue's schema is closed to it.
    let into_admin = kws_db::Credentials { database: fx.admin_database().to_owned(), ..creds };
    let mut conn = testkit::connect(&into_admin).await;
    let code = testkit::refused(&mut conn, "SELECT * FROM kws_db.databases").await;
    assert_eq!(code, "42501");
    // A temporary table there depends on the role; drop still works while that session is
    // open (it ends the session and waits for it, so the table is gone before DROP ROLE).
    sqlx::raw_sql("CREATE TEMPORARY TABLE scratch (x int)")
        .execute(&mut conn)
        .await
        .expect("PUBLIC may make temporary tables in this database");
    testkit::drop_ok(&p, &owner, &name).await;
    assert!(sqlx::raw_sql("SELECT 1").execute(&mut conn).await.is_err(), "session ended");
    let mut admin = fx.admin().await;
    assert_eq!(objects(&mut admin, &into_admin.role).await, [0, 0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_any_step_of_create_leaves_nothing() {
    let Some(fx) = Fixture::new().await else { return };
    let mut admin = fx.admin().await;
    let owner = testkit::unique_owner("fail");
    let name = testkit::label("half");
    let ident = format!("kws_{owner}_{name}");
    for step in CreateStep::ALL {
        let failing = PostgresProvisioner::builder(fx.admin_options())
            .max_databases_per_owner(1)
            .fail_after(step, false)
            .build()
            .await
            .expect("provisioner");
        match failing.create(&owner, &name).await {
            Err(Error::Backend { source, .. }) => {
                assert!(source.to_string().contains("fault injected"), "{step:?}: {source}");
            }
            other => panic!("{step:?}: {other:?}"),
        }
        assert_eq!(objects(&mut admin, &ident).await, [0, 0, 0], "after a failure at {step:?}");
    }
    // Nothing of the quota of 1 was used up.
    let p = PostgresProvisioner::builder(fx.admin_options())
        .max_databases_per_owner(1)
        .build()
        .await
        .expect("provisioner");
    let creds = testkit::create_ok(&p, &owner, &name).await;
    drop(testkit::connect(&creds).await);
    testkit::drop_ok(&p, &owner, &name).await;
    assert_eq!(objects(&mut admin, &ident).await, [0, 0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_create_is_cleaned_up_by_the_next_call_for_the_owner() {
    let Some(fx) = Fixture::new().await else { return };
    let mut admin = fx.admin().await;
    let p = fx.provisioner(1).await;
    let owner = testkit::unique_owner("crash");
    let name = testkit::label("orphan");
    let ident = format!("kws_{owner}_{name}");
    for (i, step) in CreateStep::ALL.into_iter().enumerate() {
        let crashing = PostgresProvisioner::builder(fx.admin_options())
            .fail_after(step, true)
            .build()
            .await
            .expect("provisioner");
        assert!(crashing.create(&owner, &name).await.is_err(), "{step:?}");
        let [roles, dbs, rows] = objects(&mut admin, &ident).await;
        assert_eq!(rows, 1, "{step:?}: the row records the interrupted create");
        assert_eq!((roles, dbs), (i64::from(i >= 1), i64::from(i >= 2)), "{step:?}");
        if step == CreateStep::DatabaseCreated {
            // Before PUBLIC's CONNECT is revoked, nobody may connect at all.
            let open: bool =
                sqlx::query_scalar("SELECT datallowconn FROM pg_database WHERE datname = $1")
                    .bind(&ident)
                    .fetch_one(&mut admin)
                    .await
                    .expect("pg_database");
            assert!(!open, "a fresh database is closed until it is restricted");
        }
        assert!(p.list(&owner).await.expect("list").is_empty(), "{step:?}: not listed");
        // The next operation for the owner (here a create of the same name, under a quota of
        // one) removes the leftovers first.
        let creds = testkit::create_ok(&p, &owner, &name).await;
        drop(testkit::connect(&creds).await);
        testkit::drop_ok(&p, &owner, &name).await;
        assert_eq!(objects(&mut admin, &ident).await, [0, 0, 0], "{step:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_role_or_database_of_the_derived_name_is_left_alone() {
    let Some(fx) = Fixture::new().await else { return };
    let mut admin = fx.admin().await;
    let p = fx.provisioner(5).await;
    let owner = testkit::unique_owner("foreign");
    for (kind, statement) in [("role", "CREATE ROLE"), ("database", "CREATE DATABASE")] {
        let name = testkit::label(kind);
        let ident = format!("kws_{owner}_{name}");
        let quoted = testkit::quote(&ident);
        sqlx::raw_sql(&format!("{statement} {quoted}"))
            .execute(&mut admin)
            .await
            .expect("an object made by someone else");
        let result = p.create(&owner, &name).await;
        let left = objects(&mut admin, &ident).await;
        let undo = if kind == "role" { "DROP ROLE" } else { "DROP DATABASE" };
        sqlx::raw_sql(&format!("{undo} {quoted}"))
            .execute(&mut admin)
            .await
            .expect("drop the foreign object");
        match result {
            Err(Error::IdentifierTaken { kind: k, identifier }) => {
                assert_eq!((k, identifier), (kind, ident));
            }
            other => panic!("{kind}: {other:?}"),
        }
        // Only the foreign object is left: create undid its own steps and nothing else.
        let expected = if kind == "role" { [1, 0, 0] } else { [0, 1, 0] };
        assert_eq!(left, expected, "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_survives_a_restart() {
    let Some(fx) = Fixture::new().await else { return };
    let owner = testkit::unique_owner("restart");
    let (a, b) = (testkit::label("a"), testkit::label("b"));
    {
        let first = fx.provisioner(2).await;
        testkit::create_ok(&first, &owner, &a).await;
        testkit::create_ok(&first, &owner, &b).await;
    }
    let second = fx.provisioner(2).await;
    let listed = second.list(&owner).await.expect("list");
    let names: Vec<_> = listed.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["a", "b"], "oldest first");
    assert!(listed[0].created_at <= listed[1].created_at);
    let c = testkit::label("c");
    assert!(matches!(second.create(&owner, &c).await, Err(Error::QuotaExceeded { limit: 2, .. })));
    testkit::drop_ok(&second, &owner, &a).await;
    testkit::drop_ok(&second, &owner, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_names_get_a_hashed_identifier_that_works() {
    let Some(fx) = Fixture::new().await else { return };
    let p = fx.provisioner(5).await;
    let short = testkit::unique_owner("long");
    let owner: kws_core::OwnerId =
        format!("{short}-{}", "o".repeat(62 - short.as_str().len())).parse().expect("owner");
    assert_eq!(owner.as_str().len(), 63);
    let names = [testkit::label(&"n".repeat(63)), testkit::label(&format!("{}m", "n".repeat(62)))];
    let mut idents = Vec::new();
    for name in &names {
        let creds = testkit::create_ok(&p, &owner, name).await;
        assert!(creds.database.len() <= 63, "{}", creds.database);
        let mut conn = testkit::connect(&creds).await;
        let db: String = sqlx::query_scalar("SELECT current_database()::text")
            .fetch_one(&mut conn)
            .await
            .expect("query");
        assert_eq!(db, creds.database, "not truncated by the server");
        idents.push(creds.database);
    }
    assert_ne!(idents[0], idents[1]);
    for name in &names {
        testkit::drop_ok(&p, &owner, name).await;
    }
}
