//! Tenants, users and memberships.

use kws_core::{DnsLabel, OwnerId};
use sqlx::{PgPool, Postgres};

use super::{
    db, refusal,
    rows::{self, MEMBER, TENANT, USER},
    violated,
};
use crate::platform::{
    Error, Role, Scope,
    store::{Member, Quotas, Tenant, User},
};

fn tenant_not_found(id: &OwnerId) -> Error {
    Error::not_found("tenant", id)
}

/// Whether the tenant exists (read by `executor`, inside or outside a transaction).
pub(super) async fn tenant_exists<'e>(
    executor: impl sqlx::Executor<'e, Database = Postgres>,
    id: &OwnerId,
) -> Result<bool, Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM kws_platform.tenants WHERE id = $1)")
        .bind(id.as_str())
        .fetch_one(executor)
        .await
        .map_err(db)
}

/// `NotFound` unless the scope sees the tenant and it exists.
pub(super) async fn require_tenant(
    pool: &PgPool,
    scope: &Scope,
    id: &OwnerId,
) -> Result<(), Error> {
    if scope.sees(id) && tenant_exists(pool, id).await? {
        Ok(())
    } else {
        Err(tenant_not_found(id))
    }
}

pub(super) async fn create_tenant(
    pool: &PgPool,
    scope: &Scope,
    id: OwnerId,
    display_name: String,
    quotas: Quotas,
) -> Result<Tenant, Error> {
    scope.require_operator()?;
    let quotas = rows::to_json_text(&quotas)?;
    let mut tx = pool.begin().await.map_err(db)?;
    let sql = format!(
        "INSERT INTO kws_platform.tenants (id, display_name, quotas, version, created_at, \
         updated_at) VALUES ($1, $2, $3::json, 1, now(), now()) RETURNING {TENANT}"
    );
    let row = sqlx::query(&sql)
        .bind(id.as_str())
        .bind(&display_name)
        .bind(&quotas)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match violated(&e) {
            Some("tenants_pkey") => Error::AlreadyExists { kind: "tenant", name: id.to_string() },
            _ => db(e),
        })?;
    // A tenant made again under an old id starts with no idempotency keys.
    sqlx::query("DELETE FROM kws_platform.idempotency_keys WHERE tenant = $1")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    rows::tenant(&row)
}

pub(super) async fn get_tenant(
    pool: &PgPool,
    scope: &Scope,
    id: &OwnerId,
) -> Result<Tenant, Error> {
    if !scope.sees(id) {
        return Err(tenant_not_found(id));
    }
    let sql = format!("SELECT {TENANT} FROM kws_platform.tenants WHERE id = $1");
    let row = sqlx::query(&sql).bind(id.as_str()).fetch_optional(pool).await.map_err(db)?;
    row.as_ref().map(rows::tenant).transpose()?.ok_or_else(|| tenant_not_found(id))
}

pub(super) async fn list_tenants(pool: &PgPool, scope: &Scope) -> Result<Vec<Tenant>, Error> {
    let own = scope.confined_to().map(OwnerId::as_str);
    let only = if own.is_some() { "id = $1" } else { "$1::text IS NULL" };
    let sql = format!("SELECT {TENANT} FROM kws_platform.tenants WHERE {only} ORDER BY id");
    let found = sqlx::query(&sql).bind(own).fetch_all(pool).await.map_err(db)?;
    rows::all(&found, rows::tenant)
}

pub(super) async fn update_tenant(
    pool: &PgPool,
    scope: &Scope,
    id: &OwnerId,
    expected_version: u64,
    display_name: String,
    quotas: Quotas,
) -> Result<Tenant, Error> {
    if !scope.sees(id) {
        return Err(tenant_not_found(id));
    }
    let quotas = rows::to_json_text(&quotas)?;
    let sql = format!(
        "UPDATE kws_platform.tenants SET display_name = $3, quotas = $4::json, \
         version = version + 1, updated_at = now() WHERE id = $1 AND version = $2 \
         RETURNING {TENANT}"
    );
    let updated = sqlx::query(&sql)
        .bind(id.as_str())
        .bind(rows::expected_version(expected_version))
        .bind(&display_name)
        .bind(&quotas)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    if let Some(row) = updated {
        return rows::tenant(&row);
    }
    // Refused: say why.
    let actual: Option<i64> =
        sqlx::query_scalar("SELECT version FROM kws_platform.tenants WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(pool)
            .await
            .map_err(db)?;
    Err(refusal("tenant", id.to_string(), Some(expected_version), actual))
}

pub(super) async fn delete_tenant(pool: &PgPool, scope: &Scope, id: &OwnerId) -> Result<(), Error> {
    scope.require_operator()?;
    let mut tx = pool.begin().await.map_err(db)?;
    // The lock makes creates of the tenant's objects wait, then find no tenant.
    let locked: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM kws_platform.tenants WHERE id = $1 FOR UPDATE")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
    if locked.is_none() {
        return Err(tenant_not_found(id));
    }
    let owned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM kws_platform.objects WHERE tenant = $1 AND kind <> 'job'",
    )
    .bind(id.as_str())
    .fetch_one(&mut *tx)
    .await
    .map_err(db)?;
    if owned > 0 {
        return Err(Error::InUse {
            what: format!("tenant {id}"),
            reason: format!("it owns {owned} objects"),
        });
    }
    // Its job history, its keys, then the tenant (its members go with it: ON DELETE CASCADE).
    for sql in [
        "DELETE FROM kws_platform.objects WHERE tenant = $1",
        "DELETE FROM kws_platform.idempotency_keys WHERE tenant = $1",
        "DELETE FROM kws_platform.tenants WHERE id = $1",
    ] {
        sqlx::query(sql).bind(id.as_str()).execute(&mut *tx).await.map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

pub(super) async fn create_user(pool: &PgPool, scope: &Scope, user: User) -> Result<User, Error> {
    scope.require_operator()?;
    let sql = format!(
        "INSERT INTO kws_platform.users (name, display_name, operator, created_at) \
         VALUES ($1, $2, $3, $4) RETURNING {USER}"
    );
    let row = sqlx::query(&sql)
        .bind(user.name.as_str())
        .bind(&user.display_name)
        .bind(user.operator)
        .bind(user.created_at)
        .fetch_one(pool)
        .await
        .map_err(|e| match violated(&e) {
            Some("users_pkey") => {
                Error::AlreadyExists { kind: "user", name: user.name.to_string() }
            }
            _ => db(e),
        })?;
    rows::user(&row)
}

pub(super) async fn get_user(pool: &PgPool, scope: &Scope, name: &DnsLabel) -> Result<User, Error> {
    // A tenant scope sees the users of its members only.
    let sql = format!(
        "SELECT {USER} FROM kws_platform.users u WHERE u.name = $1 AND ($2::text IS NULL OR \
         EXISTS (SELECT 1 FROM kws_platform.members m WHERE m.tenant = $2 AND m.user_name = $1))"
    );
    let row = sqlx::query(&sql)
        .bind(name.as_str())
        .bind(scope.confined_to().map(OwnerId::as_str))
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    row.as_ref().map(rows::user).transpose()?.ok_or_else(|| Error::not_found("user", name))
}

pub(super) async fn list_users(pool: &PgPool, scope: &Scope) -> Result<Vec<User>, Error> {
    // A tenant scope sees the users of its members only, as in `get_user`.
    let sql = format!(
        "SELECT {USER} FROM kws_platform.users u WHERE $1::text IS NULL OR \
         EXISTS (SELECT 1 FROM kws_platform.members m WHERE m.tenant = $1 AND m.user_name = u.name) \
         ORDER BY u.name COLLATE \"C\""
    );
    let rows = sqlx::query(&sql)
        .bind(scope.confined_to().map(OwnerId::as_str))
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter().map(rows::user).collect()
}

pub(super) async fn delete_user(
    pool: &PgPool,
    scope: &Scope,
    name: &DnsLabel,
) -> Result<(), Error> {
    scope.require_operator()?;
    // Its memberships go with it (ON DELETE CASCADE).
    let deleted = sqlx::query("DELETE FROM kws_platform.users WHERE name = $1")
        .bind(name.as_str())
        .execute(pool)
        .await
        .map_err(db)?;
    if deleted.rows_affected() == 0 {
        return Err(Error::not_found("user", name));
    }
    Ok(())
}

pub(super) async fn put_member(
    pool: &PgPool,
    scope: &Scope,
    tenant: &OwnerId,
    user: &DnsLabel,
    role: Role,
) -> Result<Member, Error> {
    require_tenant(pool, scope, tenant).await?;
    let user_not_found = || Error::not_found("user", user);
    let sql = format!(
        "INSERT INTO kws_platform.members (tenant, user_name, role, since) \
         VALUES ($1, $2, $3, now()) ON CONFLICT (tenant, user_name) \
         DO UPDATE SET role = EXCLUDED.role, since = EXCLUDED.since RETURNING {MEMBER}"
    );
    // The foreign keys answer for a tenant or user that is missing (or just went).
    let row = sqlx::query(&sql)
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(role.as_str())
        .fetch_one(pool)
        .await
        .map_err(|e| match violated(&e) {
            Some("members_tenant_fkey") => tenant_not_found(tenant),
            Some("members_user_fkey") => user_not_found(),
            _ => db(e),
        })?;
    rows::member(&row)
}

pub(super) async fn remove_member(
    pool: &PgPool,
    scope: &Scope,
    tenant: &OwnerId,
    user: &DnsLabel,
) -> Result<(), Error> {
    if !scope.sees(tenant) {
        return Err(tenant_not_found(tenant));
    }
    let deleted =
        sqlx::query("DELETE FROM kws_platform.members WHERE tenant = $1 AND user_name = $2")
            .bind(tenant.as_str())
            .bind(user.as_str())
            .execute(pool)
            .await
            .map_err(db)?;
    if deleted.rows_affected() == 1 {
        return Ok(());
    }
    require_tenant(pool, scope, tenant).await?;
    Err(Error::not_found("member", format!("{tenant}/{user}")))
}

pub(super) async fn members(
    pool: &PgPool,
    scope: &Scope,
    tenant: &OwnerId,
) -> Result<Vec<Member>, Error> {
    if !scope.sees(tenant) {
        return Err(tenant_not_found(tenant));
    }
    let sql =
        format!("SELECT {MEMBER} FROM kws_platform.members WHERE tenant = $1 ORDER BY user_name");
    let found = sqlx::query(&sql).bind(tenant.as_str()).fetch_all(pool).await.map_err(db)?;
    if found.is_empty() {
        require_tenant(pool, scope, tenant).await?;
    }
    rows::all(&found, rows::member)
}

pub(super) async fn memberships(
    pool: &PgPool,
    scope: &Scope,
    user: &DnsLabel,
) -> Result<Vec<Member>, Error> {
    let sql = format!(
        "SELECT {MEMBER} FROM kws_platform.members WHERE user_name = $1 \
         AND ($2::text IS NULL OR tenant = $2) ORDER BY tenant"
    );
    let found = sqlx::query(&sql)
        .bind(user.as_str())
        .bind(scope.confined_to().map(OwnerId::as_str))
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows::all(&found, rows::member)
}

/// The quotas of a tenant, its row locked until the transaction ends (`FOR NO KEY UPDATE`:
/// the creates and claim changes of one tenant take turns; reads and other tenants go on).
pub(super) async fn lock_quotas(
    tx: &mut sqlx::PgConnection,
    tenant: &OwnerId,
) -> Result<Quotas, Error> {
    let row = sqlx::query(
        "SELECT quotas::text AS quotas FROM kws_platform.tenants WHERE id = $1 FOR NO KEY UPDATE",
    )
    .bind(tenant.as_str())
    .fetch_optional(tx)
    .await
    .map_err(db)?
    .ok_or_else(|| tenant_not_found(tenant))?;
    rows::json(&row, "quotas")
}
