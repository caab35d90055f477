//! Operations: idempotent begins, fenced saves, cancel requests, leases on the database's clock
//! and claims of expired operations that each go to one claimer (`FOR UPDATE SKIP LOCKED`).

use std::time::Duration;

use kws_core::OwnerId;
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    db, lease_secs, refusal,
    rows::{self, OPERATION},
};
use crate::platform::{
    Error, Scope,
    store::{Begun, NewOperation, Operation, Page, listed_tenant_visible},
};

/// The states an operation can still leave.
const UNFINISHED: &str = "state IN ('pending', 'running')";

fn not_found(id: Uuid) -> Error {
    Error::not_found("operation", id)
}

/// The operation a tenant's idempotency key made, if it made one.
async fn by_key(pool: &PgPool, tenant: &OwnerId, key: &str) -> Result<Option<Operation>, Error> {
    let sql = format!(
        "SELECT {OPERATION} FROM kws_platform.operations WHERE id = \
         (SELECT operation FROM kws_platform.idempotency_keys WHERE tenant = $1 AND key = $2)"
    );
    let row =
        sqlx::query(&sql).bind(tenant.as_str()).bind(key).fetch_optional(pool).await.map_err(db)?;
    row.as_ref().map(rows::operation).transpose()
}

/// What an earlier request with the same key made: the same operation for the same request.
fn existing(op: Operation, new: &NewOperation, key: &str) -> Result<Begun, Error> {
    if op.request_hash == new.request_hash {
        Ok(Begun::Existing(op))
    } else {
        Err(Error::IdempotencyMismatch { key: key.to_owned() })
    }
}

pub(super) async fn begin_operation(
    pool: &PgPool,
    scope: &Scope,
    new: NewOperation,
) -> Result<Begun, Error> {
    if !scope.sees(&new.tenant) {
        return Err(Error::not_found("tenant", &new.tenant));
    }
    let key = new.idempotency_key.as_deref();
    // The compensated operation whose key this one takes over.
    let mut takes_over = None;
    if let Some(key) = key {
        if let Some(op) = by_key(pool, &new.tenant, key).await? {
            if !(op.state.starts_over() && op.request_hash == new.request_hash) {
                return existing(op, &new, key);
            }
            takes_over = Some(op.id);
        }
    }
    let request = rows::to_json_text(&new.request)?;
    let mut tx = pool.begin().await.map_err(db)?;
    // The tenant stays while its operation is recorded (a delete waits for this lock).
    let tenant_lock: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM kws_platform.tenants WHERE id = $1 FOR KEY SHARE")
            .bind(new.tenant.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
    if tenant_lock.is_none() {
        return Err(Error::not_found("tenant", &new.tenant));
    }
    let sql = format!(
        "INSERT INTO kws_platform.operations (id, tenant, kind, target, idempotency_key, \
         request_hash, request, state, steps, error, result, deadline, cancel_requested, \
         holder, lease_until, created_at, updated_at, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7::json, 'running', '[]', NULL, 'null', $8, false, \
         $9, $10, now(), now(), 1) RETURNING {OPERATION}"
    );
    let row = sqlx::query(&sql)
        .bind(Uuid::now_v7())
        .bind(new.tenant.as_str())
        .bind(&new.kind)
        .bind(&new.target)
        .bind(key)
        .bind(&new.request_hash)
        .bind(&request)
        .bind(new.deadline)
        .bind(&new.holder)
        .bind(new.lease_until)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
    let op = rows::operation(&row)?;
    if let Some(key) = key {
        // The key's primary key decides between concurrent begins: a second insert waits for
        // the first transaction, then does nothing; its operation is rolled back with it.
        // Taking over a compensated operation's key is a compare-and-set on the key's row:
        // of concurrent retries, one moves it, the others find that one's operation.
        let claim = match takes_over {
            None => sqlx::query_scalar(
                "INSERT INTO kws_platform.idempotency_keys (tenant, key, operation) \
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING operation",
            ),
            Some(_) => sqlx::query_scalar(
                "UPDATE kws_platform.idempotency_keys SET operation = $3 \
                 WHERE tenant = $1 AND key = $2 AND operation = $4 RETURNING operation",
            ),
        }
        .bind(new.tenant.as_str())
        .bind(key)
        .bind(op.id);
        let claim = match takes_over {
            Some(old) => claim.bind(old),
            None => claim,
        };
        let won: Option<Uuid> = claim.fetch_optional(&mut *tx).await.map_err(db)?;
        if won.is_none() {
            tx.rollback().await.map_err(db)?;
            return match by_key(pool, &new.tenant, key).await? {
                Some(op) => existing(op, &new, key),
                // The winner's tenant was deleted (and its keys with it) since.
                None => Err(Error::not_found("tenant", &new.tenant)),
            };
        }
    }
    tx.commit().await.map_err(db)?;
    Ok(Begun::New(op))
}

pub(super) async fn get_operation(
    pool: &PgPool,
    scope: &Scope,
    id: Uuid,
) -> Result<Operation, Error> {
    let sql = format!("SELECT {OPERATION} FROM kws_platform.operations WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await.map_err(db)?;
    row.as_ref()
        .map(rows::operation)
        .transpose()?
        .filter(|op| scope.sees(&op.tenant))
        .ok_or_else(|| not_found(id))
}

/// A page of operations, newest first (`$1` the tenant or NULL, `$2` the id they are older
/// than or NULL, at most `$3`): a backward range of `operations_by_tenant` (one tenant) or of
/// the primary key (every tenant). The SQL names only the filters in use, so a generic plan of
/// the statement still uses the index.
pub(super) fn operations_page_sql(one_tenant: bool, before: bool) -> String {
    format!(
        "SELECT {OPERATION} FROM kws_platform.operations WHERE {} {} ORDER BY id DESC LIMIT $3",
        if one_tenant { "tenant = $1" } else { "$1::text IS NULL" },
        if before { "AND id < $2" } else { "AND $2::uuid IS NULL" },
    )
}

pub(super) async fn list_operations(
    pool: &PgPool,
    scope: &Scope,
    tenant: Option<&OwnerId>,
    before: Option<Uuid>,
    limit: usize,
) -> Result<Vec<Operation>, Error> {
    listed_tenant_visible(scope, tenant)?;
    let limit = i64::try_from(limit.clamp(1, Page::MAX)).unwrap_or(1);
    // Operations outlive their tenant: no check that it exists. Newest first is the highest
    // UUIDv7 first: a backward range of operations_by_tenant or of the primary key.
    let only = tenant.or(scope.confined_to()).map(OwnerId::as_str);
    let sql = operations_page_sql(only.is_some(), before.is_some());
    let found =
        sqlx::query(&sql).bind(only).bind(before).bind(limit).fetch_all(pool).await.map_err(db)?;
    rows::all(&found, rows::operation)
}

pub(super) async fn save_operation(pool: &PgPool, op: &Operation) -> Result<Operation, Error> {
    let expected = rows::expected_version(op.version);
    // Fenced: only the holder, at the version it read. The saver writes its progress; what the
    // operation is, its lease and its holder stay as stored, and a cancel flag stays set.
    let sql = format!(
        "UPDATE kws_platform.operations SET state = $4, steps = $5::json, error = $6, \
         result = $7::json, deadline = $8, cancel_requested = cancel_requested OR $9, \
         updated_at = now(), version = version + 1 \
         WHERE id = $1 AND version = $2 AND holder IS NOT DISTINCT FROM $3 RETURNING {OPERATION}"
    );
    let saved = sqlx::query(&sql)
        .bind(op.id)
        .bind(expected)
        .bind(op.holder.as_deref())
        .bind(op.state.as_str())
        .bind(rows::to_json_text(&op.steps)?)
        .bind(op.error.as_deref())
        .bind(rows::to_json_text(&op.result)?)
        .bind(op.deadline)
        .bind(op.cancel_requested)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    if let Some(row) = saved {
        return rows::operation(&row);
    }
    // Refused: taken over, saved by someone else, or unknown. The version read now says which.
    let actual: Option<i64> =
        sqlx::query_scalar("SELECT version FROM kws_platform.operations WHERE id = $1")
            .bind(op.id)
            .fetch_optional(pool)
            .await
            .map_err(db)?;
    Err(refusal("operation", op.id.to_string(), Some(op.version), actual))
}

pub(super) async fn request_cancel(
    pool: &PgPool,
    scope: &Scope,
    id: Uuid,
) -> Result<Operation, Error> {
    // Not a new version: the holder's next save keeps the flag.
    let sql = format!(
        "UPDATE kws_platform.operations SET cancel_requested = true \
         WHERE id = $1 AND ($2::text IS NULL OR tenant = $2) AND {UNFINISHED} \
         RETURNING {OPERATION}"
    );
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(scope.confined_to().map(OwnerId::as_str))
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    match row {
        Some(row) => rows::operation(&row),
        // Ended already (nothing to stop), or not the scope's.
        None => get_operation(pool, scope, id).await,
    }
}

pub(super) async fn renew_operations(
    pool: &PgPool,
    holder: &str,
    lease: Duration,
) -> Result<u64, Error> {
    let sql = format!(
        "UPDATE kws_platform.operations SET lease_until = now() + make_interval(secs => $2) \
         WHERE holder = $1 AND {UNFINISHED}"
    );
    let renewed =
        sqlx::query(&sql).bind(holder).bind(lease_secs(lease)).execute(pool).await.map_err(db)?;
    Ok(renewed.rows_affected())
}

pub(super) async fn claim_expired(
    pool: &PgPool,
    holder: &str,
    lease: Duration,
) -> Result<Vec<Operation>, Error> {
    // Rows another claimer (or a saver) holds are skipped, not waited for; a row it claimed
    // and committed meanwhile is re-checked against the new lease and left out. Each expired
    // operation goes to one claimer, with a new version that fences out its old holder.
    let sql = format!(
        "UPDATE kws_platform.operations SET holder = $1, \
         lease_until = now() + make_interval(secs => $2), version = version + 1, \
         updated_at = now() \
         WHERE id IN (SELECT id FROM kws_platform.operations \
                      WHERE {UNFINISHED} AND (lease_until IS NULL OR lease_until < now()) \
                      FOR UPDATE SKIP LOCKED) \
         RETURNING {OPERATION}"
    );
    let claimed =
        sqlx::query(&sql).bind(holder).bind(lease_secs(lease)).fetch_all(pool).await.map_err(db)?;
    let mut claimed = rows::all(&claimed, rows::operation)?;
    claimed.sort_by_key(|op| op.id);
    Ok(claimed)
}

#[cfg(test)]
mod tests {
    use super::UNFINISHED;
    use crate::platform::store::OpState;

    #[test]
    fn unfinished_names_every_state_that_is_not_final() {
        for state in [
            OpState::Pending,
            OpState::Running,
            OpState::Succeeded,
            OpState::Failed,
            OpState::Compensated,
        ] {
            let named = UNFINISHED.contains(&format!("'{}'", state.as_str()));
            assert_eq!(named, !state.is_final(), "{}", state.as_str());
        }
    }
}
