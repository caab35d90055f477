//! What the server holds after `create`: role attributes, ACLs, SCRAM storage, the marker,
//! identifiers within PostgreSQL's limit; and what a tenant can reach in the admin database.

use kws_db::{postgres::PostgresProvisioner, testkit};
use sqlx::Row;

use crate::support::{Fixture, objects};

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
    let admin_url = url::Url::parse(fx.admin_url()).expect("admin URL");
    let server = (admin_url.host_str().unwrap_or_default(), admin_url.port().unwrap_or(5432));
    assert_eq!((creds.host.as_str(), creds.port), server, "credentials name the admin's server");
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
