//! Rows to records and back: the column lists every query selects, and the checked
//! conversions between the records' types and the columns' (`u64` counters in `BIGINT`, JSON
//! values in `JSON` columns read back as text).

use kws_core::{DnsLabel, OwnerId};
use serde::{Serialize, de::DeserializeOwned};
use sqlx::{Row, postgres::PgRow};

use super::db;
use crate::platform::{
    Error, Role,
    store::{Claims, Kind, Member, Meta, ObjectRecord, OpState, Operation, Tenant, User},
};

/// The columns of a tenant.
pub(super) const TENANT: &str =
    "id, display_name, quotas::text AS quotas, version, created_at, updated_at";

/// The columns of a user.
pub(super) const USER: &str = "name, display_name, operator, created_at";

/// The columns of a membership.
pub(super) const MEMBER: &str = "tenant, user_name, role, since";

/// The columns of an object.
pub(super) const OBJECT: &str = "id, kind, tenant, name, unique_key, cpu_millis, memory_mb, \
     spec::text AS spec, status::text AS status, observed_at, origin, version, created_at, \
     updated_at, deleting_at";

/// The columns of an operation.
pub(super) const OPERATION: &str = "id, tenant, kind, target, idempotency_key, request_hash, \
     request::text AS request, state, steps::text AS steps, error, result::text AS result, \
     deadline, cancel_requested, holder, lease_until, created_at, updated_at, version";

/// A stored value that does not read back: the table was changed by something else.
fn corrupt(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::backend("store", format!("stored {what} does not read back: {detail}"))
}

/// A counter for a `BIGINT` column; `field` names it when it does not fit.
pub(super) fn to_i64(field: &'static str, value: u64) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| {
        Error::invalid(field, format!("{value} is more than the store keeps ({})", i64::MAX))
    })
}

/// A version a writer expects, for a `version = $n` condition. A version past `i64::MAX` was
/// never stored, so it becomes -1, which no row has (`CHECK (version >= 1)`): the write is
/// refused as stale, as on every backend.
pub(super) fn expected_version(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(-1)
}

/// A `BIGINT` column as the counter it holds.
pub(super) fn to_u64(row: &PgRow, column: &str) -> Result<u64, Error> {
    let value: i64 = row.try_get(column).map_err(db)?;
    u64::try_from(value).map_err(|_| corrupt(column, format!("{value} is negative")))
}

/// A value as JSON text, for a `$n::json` parameter.
pub(super) fn to_json_text(value: &impl Serialize) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::backend("store", e))
}

/// A `JSON` column (selected as text) as the value it holds.
pub(super) fn json<T: DeserializeOwned>(row: &PgRow, column: &str) -> Result<T, Error> {
    let text: String = row.try_get(column).map_err(db)?;
    serde_json::from_str(&text).map_err(|e| corrupt(column, e))
}

fn text(row: &PgRow, column: &str) -> Result<String, Error> {
    row.try_get(column).map_err(db)
}

/// A `kind` column.
pub(super) fn kind(row: &PgRow, column: &str) -> Result<Kind, Error> {
    Kind::parse(&text(row, column)?).map_err(|e| corrupt(column, e))
}

fn owner(row: &PgRow, column: &str) -> Result<OwnerId, Error> {
    OwnerId::parse(&text(row, column)?).map_err(|e| corrupt(column, e))
}

fn label(row: &PgRow, column: &str) -> Result<DnsLabel, Error> {
    DnsLabel::parse(&text(row, column)?).map_err(|e| corrupt(column, e))
}

pub(super) fn tenant(row: &PgRow) -> Result<Tenant, Error> {
    Ok(Tenant {
        id: owner(row, "id")?,
        display_name: text(row, "display_name")?,
        quotas: json(row, "quotas")?,
        version: to_u64(row, "version")?,
        created_at: row.try_get("created_at").map_err(db)?,
        updated_at: row.try_get("updated_at").map_err(db)?,
    })
}

pub(super) fn user(row: &PgRow) -> Result<User, Error> {
    Ok(User {
        name: label(row, "name")?,
        display_name: text(row, "display_name")?,
        operator: row.try_get("operator").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
    })
}

pub(super) fn member(row: &PgRow) -> Result<Member, Error> {
    Ok(Member {
        tenant: owner(row, "tenant")?,
        user: label(row, "user_name")?,
        role: Role::parse(&text(row, "role")?).map_err(|e| corrupt("role", e))?,
        since: row.try_get("since").map_err(db)?,
    })
}

pub(super) fn object(row: &PgRow) -> Result<ObjectRecord, Error> {
    Ok(ObjectRecord {
        meta: Meta {
            id: row.try_get("id").map_err(db)?,
            kind: kind(row, "kind")?,
            tenant: owner(row, "tenant")?,
            name: label(row, "name")?,
            version: to_u64(row, "version")?,
            created_at: row.try_get("created_at").map_err(db)?,
            updated_at: row.try_get("updated_at").map_err(db)?,
            deleting: row.try_get("deleting_at").map_err(db)?,
        },
        unique: row.try_get("unique_key").map_err(db)?,
        claims: Claims {
            cpu_millis: to_u64(row, "cpu_millis")?,
            memory_mb: to_u64(row, "memory_mb")?,
        },
        spec: json::<serde_json::Value>(row, "spec")?.into(),
        status: json::<serde_json::Value>(row, "status")?.into(),
        observed_at: row.try_get("observed_at").map_err(db)?,
        origin: row.try_get("origin").map_err(db)?,
    })
}

/// The state's name as the `state` column keeps it.
fn op_state(raw: &str) -> Result<OpState, Error> {
    [OpState::Pending, OpState::Running, OpState::Succeeded, OpState::Failed, OpState::Compensated]
        .into_iter()
        .find(|s| s.as_str() == raw)
        .ok_or_else(|| corrupt("state", format!("unknown state {:?}", raw)))
}

pub(super) fn operation(row: &PgRow) -> Result<Operation, Error> {
    Ok(Operation {
        id: row.try_get("id").map_err(db)?,
        tenant: owner(row, "tenant")?,
        kind: text(row, "kind")?,
        target: text(row, "target")?,
        idempotency_key: row.try_get("idempotency_key").map_err(db)?,
        request_hash: text(row, "request_hash")?,
        request: json(row, "request")?,
        state: op_state(&text(row, "state")?)?,
        steps: json(row, "steps")?,
        error: row.try_get("error").map_err(db)?,
        result: json(row, "result")?,
        deadline: row.try_get("deadline").map_err(db)?,
        cancel_requested: row.try_get("cancel_requested").map_err(db)?,
        holder: row.try_get("holder").map_err(db)?,
        lease_until: row.try_get("lease_until").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
        updated_at: row.try_get("updated_at").map_err(db)?,
        version: to_u64(row, "version")?,
    })
}

/// Every row through `decode`.
pub(super) fn all<T>(
    rows: &[PgRow],
    decode: fn(&PgRow) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    rows.iter().map(decode).collect()
}
