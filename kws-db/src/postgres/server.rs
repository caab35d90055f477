//! The statements that make and remove a tenant's role and database on the server. Every name
//! is a quoted `PgIdent`; the only literal is a SCRAM verifier, quoted too. Each function is one
//! step of `create` or `drop_database`, so the caller can record what exists and undo it.

use sqlx::{Executor, PgConnection, postgres::PgConnectOptions};

use super::{PgIdent, backend, ident::quote_literal};
use crate::Error;

/// What a `create` has made so far, i.e. what undoing it must remove.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Made {
    pub(crate) role: bool,
    pub(crate) database: bool,
}

impl Made {
    /// Everything: for an operation whose progress is unknown (it was interrupted).
    pub(crate) const ALL: Made = Made { role: true, database: true };
}

/// SQLSTATE 42710: duplicate_object (a role of that name exists).
const DUPLICATE_OBJECT: &str = "42710";
/// SQLSTATE 42P04: duplicate_database.
const DUPLICATE_DATABASE: &str = "42P04";

/// Runs one statement with the simple protocol (no prepared statement to cache, and `CREATE
/// DATABASE` outside any transaction).
async fn run(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    conn.execute(sqlx::raw_sql(sql)).await.map(drop)
}

/// `e`, or `IdentifierTaken` when the server says the object exists (`code`).
fn taken(e: sqlx::Error, code: &str, kind: &'static str, ident: &PgIdent) -> Error {
    match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some(code) => {
            Error::IdentifierTaken { kind, identifier: ident.to_string() }
        }
        _ => backend(e),
    }
}

/// The login role: no attribute beyond `LOGIN`, a connection limit, a SCRAM verifier.
pub(crate) async fn create_role(
    conn: &mut PgConnection,
    ident: &PgIdent,
    verifier: &str,
    connection_limit: u32,
) -> Result<(), Error> {
    let sql = format!(
        "CREATE ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION \
         NOBYPASSRLS CONNECTION LIMIT {connection_limit} PASSWORD {}",
        ident.quoted(),
        quote_literal(verifier)
    );
    run(conn, &sql).await.map_err(|e| taken(e, DUPLICATE_OBJECT, "role", ident))
}

/// The database, owned by its role. From `template0`: it holds nothing an operator added to
/// `template1`, and no tenant can connect to it (a session in the template would make every
/// `CREATE DATABASE` fail).
pub(crate) async fn create_database(conn: &mut PgConnection, ident: &PgIdent) -> Result<(), Error> {
    let sql = format!("CREATE DATABASE {0} WITH OWNER {0} TEMPLATE template0", ident.quoted());
    run(conn, &sql).await.map_err(|e| taken(e, DUPLICATE_DATABASE, "database", ident))
}

/// Only the owner may connect to the database or make temporary tables in it.
pub(crate) async fn restrict_database(
    conn: &mut PgConnection,
    ident: &PgIdent,
) -> Result<(), Error> {
    let sql = format!("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC", ident.quoted());
    run(conn, &sql).await.map_err(backend)
}

/// Only the owner may create objects in the database's `public` schema (before PostgreSQL 15,
/// `PUBLIC` could). Runs on a connection of its own, to the new database.
pub(crate) async fn restrict_schema(
    admin: &PgConnectOptions,
    ident: &PgIdent,
) -> Result<(), Error> {
    let mut conn = sqlx::Connection::connect_with(&admin.clone().database(ident.as_str()))
        .await
        .map_err(backend)?;
    let sql = format!(
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC; GRANT USAGE, CREATE ON SCHEMA public TO {}",
        ident.quoted()
    );
    let result = run(&mut conn, &sql).await.map_err(backend);
    // The session must end before the caller returns: a lingering admin session would be
    // terminated by a later drop, harmlessly, but it would count against max_connections.
    let closed = sqlx::Connection::close(conn).await.map_err(backend);
    result.and(closed)
}

/// Replaces the role's password verifier.
pub(crate) async fn set_password(
    conn: &mut PgConnection,
    ident: &PgIdent,
    verifier: &str,
) -> Result<(), Error> {
    let sql = format!("ALTER ROLE {} WITH PASSWORD {}", ident.quoted(), quote_literal(verifier));
    run(conn, &sql).await.map_err(backend)
}

/// Removes what `made` says exists: stops new logins, ends every session of the role and every
/// session on the database (waiting for each to exit, so its temporary objects are gone), then
/// drops the database and the role. Each statement tolerates an object that is already gone.
pub(crate) async fn remove(
    conn: &mut PgConnection,
    ident: &PgIdent,
    made: Made,
) -> Result<(), Error> {
    if made.role {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(ident.as_str())
                .fetch_one(&mut *conn)
                .await
                .map_err(backend)?;
        if exists {
            run(conn, &format!("ALTER ROLE {} WITH NOLOGIN", ident.quoted()))
                .await
                .map_err(backend)?;
        }
    }
    sqlx::query(
        "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity \
         WHERE (usename = $1 OR datname = $1) AND pid <> pg_backend_pid()",
    )
    .bind(ident.as_str())
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    if made.database {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident.quoted());
        run(conn, &sql).await.map_err(backend)?;
    }
    if made.role {
        run(conn, &format!("DROP ROLE IF EXISTS {}", ident.quoted())).await.map_err(backend)?;
    }
    Ok(())
}
