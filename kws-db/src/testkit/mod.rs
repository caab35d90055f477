//! The conformance suite of [`DatabaseProvisioner`]: `pub async fn`
//! checks that every backend's tests run, once on the backend itself and once through
//! `Box<dyn DatabaseProvisioner>`. The checks connect as the tenant, over the URL `create`
//! returns, so they prove what a tenant can and cannot do, not what the backend says.
//!
//! Each check uses owners of its own (random names) and drops every database it made when it
//! passes; the calling test must clean up after a failed check (PostgreSQL databases and roles
//! are cluster-wide).

mod isolation;
mod lifecycle;

pub use isolation::{
    cannot_connect_to_another_tenants_database, cannot_create_databases_or_roles,
    cannot_reach_other_tenants_objects, cannot_read_pg_authid,
};
pub use lifecycle::{
    concurrent_creates_of_one_name, concurrent_creates_respect_the_quota,
    drop_works_while_connected, duplicates_are_refused, hostile_names_create_nothing,
    quota_is_enforced, rotation_replaces_the_password, tenant_uses_its_database,
    unknown_names_are_not_found,
};

use kws_core::{DnsLabel, OwnerId};
use rand::Rng;
use sqlx::{Connection, PgConnection};

use crate::{Credentials, DatabaseProvisioner};

/// Runs every check; `quota` is the provisioner's number of databases per owner.
pub async fn run_all<P: DatabaseProvisioner + ?Sized>(p: &P, quota: u32) {
    tenant_uses_its_database(p).await;
    cannot_connect_to_another_tenants_database(p).await;
    cannot_create_databases_or_roles(p).await;
    cannot_read_pg_authid(p).await;
    cannot_reach_other_tenants_objects(p).await;
    drop_works_while_connected(p).await;
    rotation_replaces_the_password(p).await;
    quota_is_enforced(p, quota).await;
    concurrent_creates_respect_the_quota(p, quota).await;
    duplicates_are_refused(p).await;
    unknown_names_are_not_found(p).await;
    hostile_names_create_nothing(p).await;
    concurrent_creates_of_one_name(p).await;
}

/// A fresh owner, `t-<tag>-<10 random hex digits>`, so parallel tests never share one.
pub fn unique_owner(tag: &str) -> OwnerId {
    let mut rng = rand::rng();
    let suffix: String =
        (0..10).map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0')).collect();
    match OwnerId::parse(&format!("t-{tag}-{suffix}")) {
        Ok(owner) => owner,
        Err(e) => panic!("testkit owner tag {tag:?} makes a bad owner id: {e}"),
    }
}

/// `raw` as a label.
///
/// # Panics
/// When `raw` is not a label (the suite only passes literals that are).
pub fn label(raw: &str) -> DnsLabel {
    match raw.parse() {
        Ok(l) => l,
        Err(e) => panic!("testkit label {raw:?}: {e}"),
    }
}

/// Connects as the tenant.
///
/// # Panics
/// When the credentials do not work.
pub async fn connect(creds: &Credentials) -> PgConnection {
    match PgConnection::connect(&creds.url()).await {
        Ok(conn) => conn,
        Err(e) => panic!("tenant {} cannot connect to {}: {e}", creds.role, creds.database),
    }
}

/// The SQLSTATE of a refused connection.
///
/// # Panics
/// When the connection succeeds, or fails with something other than a server error.
pub async fn refused_connection(url: &str, what: &str) -> String {
    match PgConnection::connect(url).await {
        Ok(_) => panic!("{what}: the connection was accepted"),
        Err(e) => sqlstate(e, what),
    }
}

/// Runs `sql` as the tenant on `conn` and returns the SQLSTATE it fails with.
///
/// # Panics
/// When `sql` succeeds, or fails with something other than a server error.
pub async fn refused(conn: &mut PgConnection, sql: &str) -> String {
    match sqlx::raw_sql(sql).execute(&mut *conn).await {
        Ok(_) => panic!("tenant ran {sql:?}, which must be refused"),
        Err(e) => sqlstate(e, sql),
    }
}

fn sqlstate(e: sqlx::Error, what: &str) -> String {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()).unwrap_or_default(),
        other => panic!("{what}: expected a server error, got {other}"),
    }
}

/// `raw` as a double-quoted SQL identifier.
pub fn quote(raw: &str) -> String {
    format!("\"{}\"", raw.replace('"', "\"\""))
}

/// Drops `(owner, name)`, failing the test when that fails.
pub async fn drop_ok<P: DatabaseProvisioner + ?Sized>(p: &P, owner: &OwnerId, name: &DnsLabel) {
    if let Err(e) = p.drop_database(owner, name).await {
        panic!("drop of {owner}/{name} failed: {e}");
    }
}

/// Creates `(owner, name)`, failing the test when that fails.
pub async fn create_ok<P: DatabaseProvisioner + ?Sized>(
    p: &P,
    owner: &OwnerId,
    name: &DnsLabel,
) -> Credentials {
    match p.create(owner, name).await {
        Ok(creds) => creds,
        Err(e) => panic!("create of {owner}/{name} failed: {e}"),
    }
}
