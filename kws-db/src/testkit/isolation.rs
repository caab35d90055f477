//! Checks of isolation: what a tenant must not be able to do.

use sqlx::PgConnection;

use super::{connect, create_ok, drop_ok, label, quote, refused, refused_connection, unique_owner};
use crate::{Credentials, DatabaseProvisioner};

/// SQLSTATE 42501: insufficient_privilege.
const INSUFFICIENT_PRIVILEGE: &str = "42501";
/// SQLSTATE 0A000: feature_not_supported (cross-database references).
const NOT_SUPPORTED: &str = "0A000";

/// A tenant cannot connect to another tenant's database, even with the same database name and
/// a valid password of its own.
pub async fn cannot_connect_to_another_tenants_database<P: DatabaseProvisioner + ?Sized>(p: &P) {
    let (alice, bob) = (unique_owner("iso"), unique_owner("iso"));
    let name = label("app");
    let a = create_ok(p, &alice, &name).await;
    let b = create_ok(p, &bob, &name).await;
    assert_ne!(a.database, b.database, "same name, two owners, two databases");
    assert_ne!(a.role, b.role);
    for (me, them) in [(&a, &b), (&b, &a)] {
        let intruder = Credentials { database: them.database.clone(), ..me.clone() };
        let code = refused_connection(&intruder.url(), "connect to another's database").await;
        assert_eq!(code, INSUFFICIENT_PRIVILEGE, "{} into {}", me.role, them.database);
    }
    // Its own database still works.
    drop(connect(&a).await);
    drop_ok(p, &alice, &name).await;
    drop_ok(p, &bob, &name).await;
}

/// A tenant cannot create a database or a role, nor give itself attributes.
pub async fn cannot_create_databases_or_roles<P: DatabaseProvisioner + ?Sized>(p: &P) {
    let owner = unique_owner("priv");
    let name = label("priv");
    let creds = create_ok(p, &owner, &name).await;
    let mut conn = connect(&creds).await;
    let me = quote(&creds.role);
    for sql in [
        "CREATE DATABASE kws_tenant_made".to_owned(),
        "CREATE ROLE kws_tenant_made".to_owned(),
        "CREATE ROLE kws_tenant_made LOGIN SUPERUSER".to_owned(),
        format!("ALTER ROLE {me} CREATEDB"),
        format!("ALTER ROLE {me} SUPERUSER"),
        format!("ALTER ROLE {me} CONNECTION LIMIT -1"),
        "SET ROLE postgres".to_owned(),
        "ALTER SYSTEM SET log_statement = 'none'".to_owned(),
    ] {
        assert_eq!(refused(&mut conn, &sql).await, INSUFFICIENT_PRIVILEGE, "{sql}");
    }
    drop(conn);
    drop_ok(p, &owner, &name).await;
}

/// A tenant cannot read `pg_authid` (where the password verifiers live).
pub async fn cannot_read_pg_authid<P: DatabaseProvisioner + ?Sized>(p: &P) {
    let owner = unique_owner("authid");
    let name = label("authid");
    let creds = create_ok(p, &owner, &name).await;
    let mut conn = connect(&creds).await;
    for sql in ["SELECT rolpassword FROM pg_authid", "SELECT * FROM pg_catalog.pg_authid LIMIT 1"] {
        assert_eq!(refused(&mut conn, sql).await, INSUFFICIENT_PRIVILEGE, "{sql}");
    }
    // The public view hides the verifiers.
    let shown: Vec<Option<String>> = sqlx::query_scalar("SELECT rolpassword FROM pg_roles")
        .fetch_all(&mut conn)
        .await
        .expect("pg_roles is public");
    assert!(shown.iter().flatten().all(|p| p == "********"), "{shown:?}");
    drop(conn);
    drop_ok(p, &owner, &name).await;
}

/// A tenant cannot reach another tenant's tables, role, sessions or database, nor the
/// server's files, and the other tenant's data survives every attempt.
pub async fn cannot_reach_other_tenants_objects<P: DatabaseProvisioner + ?Sized>(p: &P) {
    let (alice, bob) = (unique_owner("objs"), unique_owner("objs"));
    let name = label("data");
    let a = create_ok(p, &alice, &name).await;
    let b = create_ok(p, &bob, &name).await;
    let mut bob_conn = connect(&b).await;
    sqlx::raw_sql("CREATE TABLE secrets (v text); INSERT INTO secrets VALUES ('bob only')")
        .execute(&mut bob_conn)
        .await
        .expect("bob writes");
    let bob_pid: i32 =
        sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut bob_conn).await.expect("pid");

    let mut conn = connect(&a).await;
    let (db, role) = (quote(&b.database), quote(&b.role));
    let denied = [
        format!("SET ROLE {role}"),
        format!("SET SESSION AUTHORIZATION {role}"),
        format!("GRANT {role} TO CURRENT_USER"),
        format!("ALTER ROLE {role} PASSWORD 'stolen'"),
        format!("ALTER ROLE {role} NOLOGIN"),
        format!("DROP ROLE {role}"),
        format!("DROP DATABASE {db}"),
        format!("ALTER DATABASE {db} OWNER TO CURRENT_USER"),
        format!("ALTER DATABASE {db} CONNECTION LIMIT 0"),
        format!("SELECT pg_terminate_backend({bob_pid})"),
        format!("SELECT pg_cancel_backend({bob_pid})"),
        // The server's files hold every tenant's data.
        "SELECT pg_read_file('PG_VERSION')".to_owned(),
        "SELECT pg_ls_dir('base')".to_owned(),
        "COPY (SELECT 1) TO PROGRAM 'true'".to_owned(),
        "COPY (SELECT 1) TO '/tmp/kws-db-tenant-copy'".to_owned(),
    ];
    for sql in &denied {
        assert_eq!(refused(&mut conn, sql).await, INSUFFICIENT_PRIVILEGE, "{sql}");
    }
    let cross = format!("SELECT * FROM {db}.public.secrets");
    assert_eq!(refused(&mut conn, &cross).await, NOT_SUPPORTED, "{cross}");
    let seen: Option<String> =
        sqlx::query_scalar("SELECT query FROM pg_stat_activity WHERE pid = $1")
            .bind(bob_pid)
            .fetch_optional(&mut conn)
            .await
            .expect("pg_stat_activity");
    assert_eq!(seen.as_deref(), Some("<insufficient privilege>"), "another's query text");

    assert_still_there(&mut bob_conn).await;
    drop((conn, bob_conn));
    drop_ok(p, &alice, &name).await;
    drop_ok(p, &bob, &name).await;
}

async fn assert_still_there(conn: &mut PgConnection) {
    let v: String =
        sqlx::query_scalar("SELECT v FROM secrets").fetch_one(conn).await.expect("bob reads");
    assert_eq!(v, "bob only");
}
