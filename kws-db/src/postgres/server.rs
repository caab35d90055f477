//! The statements that make and remove a tenant's role and database on the server. Every name
//! is a quoted `PgIdent`; the literals (a SCRAM verifier, the role's marker) are quoted too.
//! Each function is one step of `create` or `drop_database`.
//!
//! A role kws-db makes carries a marker, its comment `kws-db <owner>/<name>`, set in the same
//! transaction as the role; only a role with its marker, and only a database that role owns,
//! is ever removed. So undoing a failed `create`, or cleaning up after a crash, never drops a
//! role or a database that kws-db did not make, whatever the name.

use kws_core::{DnsLabel, OwnerId};
use sqlx::{Executor, PgConnection, Row, postgres::PgConnectOptions};

use super::{PgIdent, backend, ident::quote_literal};
use crate::Error;

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

/// The comment that marks `(owner, name)`'s role as kws-db's.
pub(crate) fn marker(owner: &OwnerId, name: &DnsLabel) -> String {
    format!("kws-db {owner}/{name}")
}

/// The login role: no attribute beyond `LOGIN`, a connection limit, a SCRAM verifier, and the
/// marker. Both statements go in one string, hence one implicit transaction: the role never
/// exists without its marker.
pub(crate) async fn create_role(
    conn: &mut PgConnection,
    ident: &PgIdent,
    marker: &str,
    verifier: &str,
    connection_limit: u32,
) -> Result<(), Error> {
    let sql = format!(
        "CREATE ROLE {0} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION \
         NOBYPASSRLS CONNECTION LIMIT {connection_limit} PASSWORD {1}; COMMENT ON ROLE {0} IS {2}",
        ident.quoted(),
        quote_literal(verifier),
        quote_literal(marker),
    );
    run(conn, &sql).await.map_err(|e| taken(e, DUPLICATE_OBJECT, "role", ident))
}

/// The database, owned by its role, closed to connections until `restrict_database` has
/// revoked `PUBLIC`'s right to connect (the name is predictable: another tenant must not slip
/// in between). From `template0`: it holds nothing an operator added to `template1`, and no
/// tenant can connect to it (a session in the template would make every `CREATE DATABASE`
/// fail).
pub(crate) async fn create_database(conn: &mut PgConnection, ident: &PgIdent) -> Result<(), Error> {
    let sql = format!(
        "CREATE DATABASE {0} WITH OWNER {0} TEMPLATE template0 ALLOW_CONNECTIONS false",
        ident.quoted()
    );
    run(conn, &sql).await.map_err(|e| taken(e, DUPLICATE_DATABASE, "database", ident))
}

/// Only the owner may connect to the database or make temporary tables in it; then the
/// database opens for connections (one implicit transaction: both or neither).
pub(crate) async fn restrict_database(
    conn: &mut PgConnection,
    ident: &PgIdent,
) -> Result<(), Error> {
    let sql = format!(
        "REVOKE CONNECT, TEMPORARY ON DATABASE {0} FROM PUBLIC; \
         ALTER DATABASE {0} WITH ALLOW_CONNECTIONS true",
        ident.quoted()
    );
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

/// Removes `ident`'s database and role if the role carries `marker` (else nothing: the name
/// is not kws-db's). Stops new logins, ends every session of the role and every session on the
/// database (waiting for each to exit, so its temporary objects are gone), then drops the
/// database (only if that role owns it) and the role. Repeating it is harmless.
pub(crate) async fn remove(
    conn: &mut PgConnection,
    ident: &PgIdent,
    marker: &str,
) -> Result<(), Error> {
    let found = sqlx::query(
        "SELECT EXISTS (SELECT 1 FROM pg_database d WHERE d.datname = $1 AND d.datdba = r.oid) \
                AS owns_database \
         FROM pg_roles r \
         WHERE r.rolname = $1 AND shobj_description(r.oid, 'pg_authid') = $2",
    )
    .bind(ident.as_str())
    .bind(marker)
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend)?;
    let Some(row) = found else { return Ok(()) };
    let owns_database: bool = row.try_get("owns_database").map_err(backend)?;
    run(conn, &format!("ALTER ROLE {} WITH NOLOGIN", ident.quoted())).await.map_err(backend)?;
    sqlx::query(
        "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity \
         WHERE usename = $1 AND pid <> pg_backend_pid()",
    )
    .bind(ident.as_str())
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    if owns_database {
        // FORCE ends the remaining sessions on the database, whoever they belong to.
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident.quoted());
        run(conn, &sql).await.map_err(backend)?;
    }
    run(conn, &format!("DROP ROLE IF EXISTS {}", ident.quoted())).await.map_err(backend)
}
