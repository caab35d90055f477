//! The PostgreSQL store (feature `postgres`): tables in the schema `kws_platform`, made by the
//! migrations in `migrations/platform/` (their history in `kws_platform._sqlx_migrations`, apart
//! from the other crates' migrations in the same database).
//!
//! Atomicity: every method is one statement, or one transaction when it checks before it
//! writes; the constraints (`UNIQUE (tenant, kind, name)`, `UNIQUE (unique_key)`, the
//! idempotency keys' primary key, the foreign keys) are the last guard. Quota checks lock the
//! tenant's row (`FOR NO KEY UPDATE`) in the transaction that inserts, so the creates of one
//! tenant take turns and concurrent creates of different tenants do not wait on each other.
//! Every lock is taken tenant row first, object rows second. Lease times are the database's
//! (`now()`), so processes with skewed clocks agree on what expired.

mod objects;
mod operations;
#[cfg(test)]
mod plans;
mod rows;
mod tenants;

use std::{fmt, time::Duration};

use chrono::{DateTime, Utc};
use kws_core::{DnsLabel, OwnerId};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

use super::{
    Begun, Claims, Json, Kind, Member, NewObject, NewOperation, ObjectRecord, Operation, Page,
    PlatformStore, Quotas, Tenant, TenantUsage, User,
};
use crate::platform::{Error, Role, Scope};

/// The schema that holds the store's tables and its migration history.
const SCHEMA: &str = "kws_platform";

/// The Platform's store of record in PostgreSQL.
///
/// Clones share the pool. Several processes (or several stores on one database) may use the
/// same tables at once: every rule of the [`PlatformStore`] contract holds across them.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

/// The pool's size only: its connect options hold the password.
impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &SCHEMA)
            .field("connections", &self.pool.size())
            .field("idle", &self.pool.num_idle())
            .finish()
    }
}

impl PostgresStore {
    /// Applies the store's migrations (idempotent; safe from many processes at once and beside
    /// the other kws crates' migrations in the same database) and returns the store on `pool`.
    pub async fn connect(pool: PgPool) -> Result<Self, Error> {
        migrate(&pool).await?;
        Ok(Self { pool })
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Creates the schema and applies the migrations on a connection of its own whose
/// `search_path` is the schema, so sqlx keeps the history in `kws_platform._sqlx_migrations`.
async fn migrate(pool: &PgPool) -> Result<(), Error> {
    let mut conn = PgConnection::connect_with(&pool.connect_options()).await.map_err(db)?;
    // Two processes creating the schema at once would race on the catalogue: one at a time.
    let setup = format!(
        "BEGIN; SELECT pg_advisory_xact_lock(hashtext('{SCHEMA} migrations')); \
         CREATE SCHEMA IF NOT EXISTS {SCHEMA}; COMMIT; SET search_path TO {SCHEMA}"
    );
    let migrated = match conn.execute(sqlx::raw_sql(&setup)).await {
        Ok(_) => sqlx::migrate!("./migrations/platform")
            .run(&mut conn)
            .await
            .map_err(|e| Error::backend("store", e)),
        Err(e) => Err(db(e)),
    };
    let closed = conn.close().await.map_err(db);
    migrated.and(closed)
}

/// A failure of the database the caller cannot fix.
fn db(e: sqlx::Error) -> Error {
    Error::backend("store", e)
}

/// The constraint a write violated, when it was a unique or foreign-key violation.
fn violated(e: &sqlx::Error) -> Option<&str> {
    let db = e.as_database_error()?;
    match db.code().as_deref() {
        Some("23505" | "23503") => db.constraint(),
        _ => None,
    }
}

/// Why a write at version `expected` (if it named one) changed nothing, from the record's
/// version read after the refusal (`None`: no such record): `NotFound` or `Conflict`, both
/// naming the record as `kind` and `name`. Versions only grow, so the version read is not
/// older than the one that refused the write.
fn refusal(kind: &'static str, name: String, expected: Option<u64>, actual: Option<i64>) -> Error {
    match (expected, actual) {
        (Some(expected), Some(actual)) => {
            Error::Conflict { kind, name, expected, actual: u64::try_from(actual).unwrap_or(0) }
        }
        _ => Error::NotFound { kind, name },
    }
}

/// `lease` as seconds for `now() + make_interval(secs => ...)`, cut to the longest lease.
fn lease_secs(lease: Duration) -> f64 {
    super::capped_lease(lease).as_secs_f64()
}

/// The name as stored, or `None` when no object can have it: names arrive as `DnsLabel`s and
/// are stored in their lowercase form, so anything else (quotes, NUL, uppercase, too long) is
/// simply not there, and is not sent to the database.
fn stored_name(name: &str) -> Option<&str> {
    DnsLabel::parse(name).ok().filter(|label| label.as_str() == name).map(|_| name)
}

#[async_trait::async_trait]
impl PlatformStore for PostgresStore {
    async fn create_tenant(
        &self,
        scope: &Scope,
        id: OwnerId,
        display_name: String,
        quotas: Quotas,
    ) -> Result<Tenant, Error> {
        tenants::create_tenant(&self.pool, scope, id, display_name, quotas).await
    }

    async fn get_tenant(&self, scope: &Scope, id: &OwnerId) -> Result<Tenant, Error> {
        tenants::get_tenant(&self.pool, scope, id).await
    }

    async fn list_tenants(&self, scope: &Scope) -> Result<Vec<Tenant>, Error> {
        tenants::list_tenants(&self.pool, scope).await
    }

    async fn update_tenant(
        &self,
        scope: &Scope,
        id: &OwnerId,
        expected_version: u64,
        display_name: String,
        quotas: Quotas,
    ) -> Result<Tenant, Error> {
        tenants::update_tenant(&self.pool, scope, id, expected_version, display_name, quotas).await
    }

    async fn delete_tenant(&self, scope: &Scope, id: &OwnerId) -> Result<(), Error> {
        tenants::delete_tenant(&self.pool, scope, id).await
    }

    async fn create_user(&self, scope: &Scope, user: User) -> Result<User, Error> {
        tenants::create_user(&self.pool, scope, user).await
    }

    async fn get_user(&self, scope: &Scope, name: &DnsLabel) -> Result<User, Error> {
        tenants::get_user(&self.pool, scope, name).await
    }

    async fn list_users(&self, scope: &Scope) -> Result<Vec<User>, Error> {
        tenants::list_users(&self.pool, scope).await
    }

    async fn delete_user(&self, scope: &Scope, name: &DnsLabel) -> Result<(), Error> {
        tenants::delete_user(&self.pool, scope, name).await
    }

    async fn put_member(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        user: &DnsLabel,
        role: Role,
    ) -> Result<Member, Error> {
        tenants::put_member(&self.pool, scope, tenant, user, role).await
    }

    async fn remove_member(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        user: &DnsLabel,
    ) -> Result<(), Error> {
        tenants::remove_member(&self.pool, scope, tenant, user).await
    }

    async fn members(&self, scope: &Scope, tenant: &OwnerId) -> Result<Vec<Member>, Error> {
        tenants::members(&self.pool, scope, tenant).await
    }

    async fn memberships(&self, scope: &Scope, user: &DnsLabel) -> Result<Vec<Member>, Error> {
        tenants::memberships(&self.pool, scope, user).await
    }

    async fn create_object(&self, scope: &Scope, new: NewObject) -> Result<ObjectRecord, Error> {
        objects::create_object(&self.pool, scope, new).await
    }

    async fn get_object(
        &self,
        scope: &Scope,
        kind: Kind,
        tenant: &OwnerId,
        name: &str,
    ) -> Result<ObjectRecord, Error> {
        objects::get_object(&self.pool, scope, kind, tenant, name).await
    }

    async fn find_object(&self, scope: &Scope, id: Uuid) -> Result<ObjectRecord, Error> {
        objects::find_object(&self.pool, scope, id).await
    }

    async fn list_objects(
        &self,
        scope: &Scope,
        kind: Kind,
        tenant: Option<&OwnerId>,
        page: &Page,
    ) -> Result<Vec<ObjectRecord>, Error> {
        objects::list_objects(&self.pool, scope, kind, tenant, page).await
    }

    async fn update_spec(
        &self,
        scope: &Scope,
        kind: Kind,
        tenant: &OwnerId,
        name: &str,
        expected_version: u64,
        spec: Json,
        claims: Claims,
    ) -> Result<ObjectRecord, Error> {
        let key = objects::Key { kind, tenant, name };
        objects::update_spec(&self.pool, scope, key, expected_version, spec, claims).await
    }

    async fn update_status(
        &self,
        scope: &Scope,
        kind: Kind,
        tenant: &OwnerId,
        name: &str,
        status: Json,
        observed_at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let key = objects::Key { kind, tenant, name };
        objects::update_status(&self.pool, scope, key, status, observed_at).await
    }

    async fn mark_deleting(
        &self,
        scope: &Scope,
        kind: Kind,
        tenant: &OwnerId,
        name: &str,
    ) -> Result<ObjectRecord, Error> {
        let key = objects::Key { kind, tenant, name };
        objects::mark_deleting(&self.pool, scope, key).await
    }

    async fn delete_object(
        &self,
        scope: &Scope,
        kind: Kind,
        tenant: &OwnerId,
        name: &str,
        expected_version: Option<u64>,
    ) -> Result<ObjectRecord, Error> {
        let key = objects::Key { kind, tenant, name };
        objects::delete_object(&self.pool, scope, key, expected_version).await
    }

    async fn usage(&self, scope: &Scope, tenant: &OwnerId) -> Result<TenantUsage, Error> {
        objects::usage(&self.pool, scope, tenant).await
    }

    async fn begin_operation(&self, scope: &Scope, new: NewOperation) -> Result<Begun, Error> {
        operations::begin_operation(&self.pool, scope, new).await
    }

    async fn get_operation(&self, scope: &Scope, id: Uuid) -> Result<Operation, Error> {
        operations::get_operation(&self.pool, scope, id).await
    }

    async fn list_operations(
        &self,
        scope: &Scope,
        tenant: Option<&OwnerId>,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Operation>, Error> {
        operations::list_operations(&self.pool, scope, tenant, before, limit).await
    }

    async fn save_operation(&self, op: &Operation) -> Result<Operation, Error> {
        operations::save_operation(&self.pool, op).await
    }

    async fn request_cancel(&self, scope: &Scope, id: Uuid) -> Result<Operation, Error> {
        operations::request_cancel(&self.pool, scope, id).await
    }

    async fn renew_operations(&self, holder: &str, lease: Duration) -> Result<u64, Error> {
        operations::renew_operations(&self.pool, holder, lease).await
    }

    async fn claim_expired(&self, holder: &str, lease: Duration) -> Result<Vec<Operation>, Error> {
        operations::claim_expired(&self.pool, holder, lease).await
    }
}
