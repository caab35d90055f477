//! Tenant objects: creates checked against names, unique keys and quotas in one transaction,
//! versioned spec writes, observations, keyset pages, usage.

use chrono::{DateTime, Utc};
use kws_core::OwnerId;
use sqlx::{PgPool, Postgres, Row};
use uuid::Uuid;

use super::{
    db, refusal,
    rows::{self, OBJECT},
    stored_name,
    tenants::{lock_quotas, require_tenant},
    violated,
};
use crate::platform::{
    Error, Scope,
    store::{
        Claims, Json, Kind, NewObject, ObjectRecord, Page, TenantUsage, check_grown_claims,
        claims_grow, listed_tenant_visible, object_exists, object_not_found, unique_taken,
    },
};

/// Which object: tenant, kind and name.
#[derive(Debug, Clone, Copy)]
pub(super) struct Key<'a> {
    pub(super) kind: Kind,
    pub(super) tenant: &'a OwnerId,
    pub(super) name: &'a str,
}

impl Key<'_> {
    fn not_found(&self) -> Error {
        object_not_found(self.kind, self.tenant, self.name)
    }

    /// The name as stored, or `NotFound` when the scope does not see the tenant or no object
    /// can have the name.
    fn visible_name(&self, scope: &Scope) -> Result<&str, Error> {
        stored_name(self.name).filter(|_| scope.sees(self.tenant)).ok_or_else(|| self.not_found())
    }
}

/// What a tenant uses, read by `executor` (inside the creating transaction, after the lock).
async fn usage_of<'e>(
    executor: impl sqlx::Executor<'e, Database = Postgres>,
    tenant: &OwnerId,
) -> Result<TenantUsage, Error> {
    let found = sqlx::query(
        "SELECT kind, count(*) AS objects, \
         LEAST(COALESCE(sum(cpu_millis), 0), 9223372036854775807)::bigint AS cpu_millis, \
         LEAST(COALESCE(sum(memory_mb), 0), 9223372036854775807)::bigint AS memory_mb \
         FROM kws_platform.objects WHERE tenant = $1 GROUP BY kind",
    )
    .bind(tenant.as_str())
    .fetch_all(executor)
    .await
    .map_err(db)?;
    let mut usage = TenantUsage::default();
    for row in &found {
        let kind = rows::kind(row, "kind")?;
        let count = rows::to_u64(row, "objects")?;
        match kind {
            Kind::Instance => usage.instances = count,
            Kind::App => usage.apps = count,
            Kind::Device => usage.devices = count,
            Kind::Database => usage.databases = count,
            Kind::Job => usage.jobs = count,
        }
        usage.cpu_millis = usage.cpu_millis.saturating_add(rows::to_u64(row, "cpu_millis")?);
        usage.memory_mb = usage.memory_mb.saturating_add(rows::to_u64(row, "memory_mb")?);
    }
    Ok(usage)
}

pub(super) async fn create_object(
    pool: &PgPool,
    scope: &Scope,
    new: NewObject,
) -> Result<ObjectRecord, Error> {
    if !scope.sees(&new.tenant) {
        return Err(Error::not_found("tenant", &new.tenant));
    }
    let cpu_millis = rows::to_i64("claims.cpu_millis", new.claims.cpu_millis)?;
    let memory_mb = rows::to_i64("claims.memory_mb", new.claims.memory_mb)?;
    let spec = rows::to_json_text(&new.spec)?;
    let (tenant, name) = (new.tenant.as_str(), new.name.as_str());
    let mut tx = pool.begin().await.map_err(db)?;
    let quotas = lock_quotas(&mut tx, &new.tenant).await?;
    // The name first, then the unique key, then the quota: the order of every backend. The
    // unique key is not the tenant's to lock: its UNIQUE constraint settles a race.
    let (name_taken, key_taken): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM kws_platform.objects \
                        WHERE tenant = $1 AND kind = $2 AND name = $3), \
                EXISTS (SELECT 1 FROM kws_platform.objects WHERE unique_key = $4)",
    )
    .bind(tenant)
    .bind(new.kind.as_str())
    .bind(name)
    .bind(new.unique.as_deref())
    .fetch_one(&mut *tx)
    .await
    .map_err(db)?;
    if name_taken {
        return Err(object_exists(new.kind, &new.tenant, name));
    }
    if let Some(unique) = new.unique.as_deref().filter(|_| key_taken) {
        return Err(unique_taken(unique));
    }
    let usage = usage_of(&mut *tx, &new.tenant).await?;
    quotas.check(&new.tenant, &usage, new.kind, new.claims)?;
    let sql = format!(
        "INSERT INTO kws_platform.objects (id, kind, tenant, name, unique_key, cpu_millis, \
         memory_mb, spec, status, observed_at, origin, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8::json, 'null', NULL, $9, 1, now(), now()) \
         RETURNING {OBJECT}"
    );
    let row = sqlx::query(&sql)
        .bind(Uuid::now_v7())
        .bind(new.kind.as_str())
        .bind(tenant)
        .bind(name)
        .bind(new.unique.as_deref())
        .bind(cpu_millis)
        .bind(memory_mb)
        .bind(&spec)
        .bind(new.origin)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match violated(&e) {
            Some("objects_name_key") => object_exists(new.kind, &new.tenant, name),
            Some("objects_unique_key") => unique_taken(new.unique.as_deref().unwrap_or(name)),
            Some("objects_tenant_fkey") => Error::not_found("tenant", &new.tenant),
            _ => db(e),
        })?;
    tx.commit().await.map_err(db)?;
    rows::object(&row)
}

pub(super) async fn get_object(
    pool: &PgPool,
    scope: &Scope,
    kind: Kind,
    tenant: &OwnerId,
    name: &str,
) -> Result<ObjectRecord, Error> {
    let key = Key { kind, tenant, name };
    let name = key.visible_name(scope)?;
    let sql = format!(
        "SELECT {OBJECT} FROM kws_platform.objects WHERE tenant = $1 AND kind = $2 AND name = $3"
    );
    let row = sqlx::query(&sql)
        .bind(tenant.as_str())
        .bind(kind.as_str())
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    row.as_ref().map(rows::object).transpose()?.ok_or_else(|| key.not_found())
}

pub(super) async fn find_object(
    pool: &PgPool,
    scope: &Scope,
    id: Uuid,
) -> Result<ObjectRecord, Error> {
    let sql = format!("SELECT {OBJECT} FROM kws_platform.objects WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await.map_err(db)?;
    row.as_ref()
        .map(rows::object)
        .transpose()?
        .filter(|record| scope.sees(&record.meta.tenant))
        .ok_or_else(|| Error::not_found("object", id))
}

/// A page of one tenant's objects of a kind (`$1` tenant, `$2` kind, after name `$3`, at most
/// `$4`): a range of `objects_name_key`, in its order.
pub(super) fn tenant_page_sql() -> String {
    format!(
        "SELECT {OBJECT} FROM kws_platform.objects WHERE tenant = $1 AND kind = $2 \
         AND name > $3 ORDER BY name LIMIT $4"
    )
}

/// A page of every tenant's objects of a kind (`$1` kind, after `($2, $3)`, at most `$4`): a
/// range of `objects_by_kind`, in its order.
pub(super) fn kind_page_sql() -> String {
    format!(
        "SELECT {OBJECT} FROM kws_platform.objects WHERE kind = $1 \
         AND (tenant, name) > ($2, $3) ORDER BY tenant, name LIMIT $4"
    )
}

pub(super) async fn list_objects(
    pool: &PgPool,
    scope: &Scope,
    kind: Kind,
    tenant: Option<&OwnerId>,
    page: &Page,
) -> Result<Vec<ObjectRecord>, Error> {
    listed_tenant_visible(scope, tenant)?;
    let limit = i64::try_from(page.limit()).unwrap_or(i64::MAX);
    // A name holds no NUL, so the names after "a\0b" are the names after "a" (and PostgreSQL
    // text cannot carry a NUL).
    let after = page.after.as_ref().map(|(t, n)| (t.as_str(), n.split('\0').next().unwrap_or("")));
    let found = match tenant.or(scope.confined_to()) {
        Some(one) => {
            // The name after which this tenant's page starts; none when the cursor is past it.
            let from = match after {
                None => Some(""),
                Some((t, _)) if t < one.as_str() => Some(""),
                Some((t, n)) if t == one.as_str() => Some(n),
                Some(_) => None,
            };
            match from {
                Some(from) => {
                    let sql = tenant_page_sql();
                    let query = sqlx::query(&sql).bind(one.as_str()).bind(kind.as_str());
                    query.bind(from).bind(limit).fetch_all(pool).await.map_err(db)?
                }
                None => Vec::new(),
            }
        }
        None => {
            let (t, n) = after.unwrap_or(("", ""));
            let sql = kind_page_sql();
            let query = sqlx::query(&sql).bind(kind.as_str()).bind(t).bind(n).bind(limit);
            query.fetch_all(pool).await.map_err(db)?
        }
    };
    // An empty page of a named tenant: is there such a tenant at all?
    if let Some(tenant) = tenant.filter(|_| found.is_empty()) {
        require_tenant(pool, scope, tenant).await?;
    }
    rows::all(&found, rows::object)
}

/// The object's version now, if it exists.
async fn current_version<'e>(
    executor: impl sqlx::Executor<'e, Database = Postgres>,
    key: Key<'_>,
) -> Result<Option<i64>, Error> {
    sqlx::query_scalar(
        "SELECT version FROM kws_platform.objects WHERE tenant = $1 AND kind = $2 AND name = $3",
    )
    .bind(key.tenant.as_str())
    .bind(key.kind.as_str())
    .bind(key.name)
    .fetch_optional(executor)
    .await
    .map_err(db)
}

/// Why a write of `key` at `expected` changed nothing, the object being at `actual`.
fn refused(key: Key<'_>, expected: Option<u64>, actual: Option<i64>) -> Error {
    refusal(key.kind.as_str(), format!("{}/{}", key.tenant, key.name), expected, actual)
}

pub(super) async fn update_spec(
    pool: &PgPool,
    scope: &Scope,
    key: Key<'_>,
    expected_version: u64,
    spec: Json,
    claims: Claims,
) -> Result<ObjectRecord, Error> {
    let name = key.visible_name(scope)?;
    let expected = rows::expected_version(expected_version);
    let cpu_millis = rows::to_i64("claims.cpu_millis", claims.cpu_millis)?;
    let memory_mb = rows::to_i64("claims.memory_mb", claims.memory_mb)?;
    let spec = rows::to_json_text(&spec)?;
    let mut tx = pool.begin().await.map_err(db)?;
    let current = sqlx::query(
        "SELECT version, cpu_millis, memory_mb FROM kws_platform.objects \
         WHERE tenant = $1 AND kind = $2 AND name = $3",
    )
    .bind(key.tenant.as_str())
    .bind(key.kind.as_str())
    .bind(name)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?
    .ok_or_else(|| key.not_found())?;
    if rows::to_u64(&current, "version")? != expected_version {
        return Err(refused(key, Some(expected_version), current.try_get("version").ok()));
    }
    let old = Claims {
        cpu_millis: rows::to_u64(&current, "cpu_millis")?,
        memory_mb: rows::to_u64(&current, "memory_mb")?,
    };
    if claims_grow(old, claims) {
        // The tenant's lock, then the usage: no other grow or create of the tenant in between.
        // The claims read above are still the object's if the version below still matches.
        let quotas = lock_quotas(&mut tx, key.tenant).await?;
        let usage = usage_of(&mut *tx, key.tenant).await?;
        check_grown_claims(&quotas, key.tenant, &usage, key.kind, old, claims)?;
    }
    let sql = format!(
        "UPDATE kws_platform.objects SET spec = $5::json, cpu_millis = $6, memory_mb = $7, \
         version = version + 1, updated_at = now() \
         WHERE tenant = $1 AND kind = $2 AND name = $3 AND version = $4 RETURNING {OBJECT}"
    );
    let updated = sqlx::query(&sql)
        .bind(key.tenant.as_str())
        .bind(key.kind.as_str())
        .bind(name)
        .bind(expected)
        .bind(&spec)
        .bind(cpu_millis)
        .bind(memory_mb)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
    let Some(row) = updated else {
        let actual = current_version(&mut *tx, key).await?;
        return Err(refused(key, Some(expected_version), actual));
    };
    tx.commit().await.map_err(db)?;
    rows::object(&row)
}

pub(super) async fn update_status(
    pool: &PgPool,
    scope: &Scope,
    key: Key<'_>,
    status: Json,
    observed_at: DateTime<Utc>,
) -> Result<bool, Error> {
    let name = key.visible_name(scope)?;
    let status = rows::to_json_text(&status)?;
    // One statement: the newer-observation check and the write cannot be split by another
    // observer. An observation at the stored instant applies (only a newer one wins over it).
    let applied = sqlx::query(
        "UPDATE kws_platform.objects SET status = $4::json, observed_at = $5 \
         WHERE tenant = $1 AND kind = $2 AND name = $3 \
         AND (observed_at IS NULL OR observed_at <= $5)",
    )
    .bind(key.tenant.as_str())
    .bind(key.kind.as_str())
    .bind(name)
    .bind(&status)
    .bind(observed_at)
    .execute(pool)
    .await
    .map_err(db)?;
    if applied.rows_affected() == 1 {
        return Ok(true);
    }
    // Nothing changed: a newer observation is stored, or there is no such object.
    match current_version(pool, key).await? {
        Some(_) => Ok(false),
        None => Err(key.not_found()),
    }
}

pub(super) async fn mark_deleting(
    pool: &PgPool,
    scope: &Scope,
    key: Key<'_>,
) -> Result<ObjectRecord, Error> {
    let name = key.visible_name(scope)?;
    // Right-hand sides read the row as it was: the first mark bumps the version, later ones
    // change nothing.
    let sql = format!(
        "UPDATE kws_platform.objects SET deleting_at = COALESCE(deleting_at, now()), \
         version = version + CASE WHEN deleting_at IS NULL THEN 1 ELSE 0 END \
         WHERE tenant = $1 AND kind = $2 AND name = $3 RETURNING {OBJECT}"
    );
    let marked = sqlx::query(&sql)
        .bind(key.tenant.as_str())
        .bind(key.kind.as_str())
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    match marked {
        Some(row) => rows::object(&row),
        None => Err(key.not_found()),
    }
}

pub(super) async fn delete_object(
    pool: &PgPool,
    scope: &Scope,
    key: Key<'_>,
    expected_version: Option<u64>,
) -> Result<ObjectRecord, Error> {
    let name = key.visible_name(scope)?;
    let expected = expected_version.map(rows::expected_version);
    let sql = format!(
        "DELETE FROM kws_platform.objects WHERE tenant = $1 AND kind = $2 AND name = $3 \
         AND ($4::bigint IS NULL OR version = $4) RETURNING {OBJECT}"
    );
    let deleted = sqlx::query(&sql)
        .bind(key.tenant.as_str())
        .bind(key.kind.as_str())
        .bind(name)
        .bind(expected)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    match deleted {
        Some(row) => rows::object(&row),
        None => Err(refused(key, expected_version, current_version(pool, key).await?)),
    }
}

pub(super) async fn usage(
    pool: &PgPool,
    scope: &Scope,
    tenant: &OwnerId,
) -> Result<TenantUsage, Error> {
    require_tenant(pool, scope, tenant).await?;
    usage_of(pool, tenant).await
}
