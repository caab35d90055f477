//! The conformance suite every [`PlatformStore`] backend runs (feature `testkit`), directly and
//! through `Arc<dyn PlatformStore>`; a third-party backend can run it too. Each check takes
//! the store as `&dyn PlatformStore`, makes its own tenants, users and holders under a fresh
//! random id (so checks can share one store, one database), and panics with a message that
//! names the clause of the contract it broke.
//!
//! The race checks take several stores (`&[&dyn PlatformStore]`): two `PostgresStore`s on one
//! database stand for two processes; [`run_all`] runs them on its one store.

mod leases;
mod objects;
mod operations;
mod pages;
mod quotas;
mod scope;
mod tenants;

pub use leases::{
    claims_take_over_expired_operations, expired_operations_go_to_one_claimer,
    renewals_extend_only_the_holders_unfinished_leases,
};
pub use objects::{
    concurrent_creates_of_one_name_have_one_winner, lookups_by_impossible_names_are_not_found,
    marks_for_removal_are_kept, names_and_unique_keys_are_unique, records_round_trip,
    versions_fence_spec_writes,
};
pub use operations::{
    a_compensated_operations_key_starts_over, cancel_requests_survive_the_holders_save,
    concurrent_begins_make_one_operation, idempotency_keys_find_the_first_operation,
    saves_are_fenced_by_holder_and_version,
};
pub use pages::{lists_page_in_tenant_and_name_order, operations_list_newest_first};
pub use quotas::{
    concurrent_creates_stay_within_quota, quotas_limit_counts_and_claims,
    update_spec_checks_the_claims_that_grow,
};
pub use scope::{
    a_tenant_scope_sees_only_its_tenant, only_the_operator_creates_and_deletes_tenants_and_users,
    users_and_members,
};
pub use tenants::deleting_a_tenant_takes_its_members_and_jobs;

use std::fmt::Debug;

use chrono::{DateTime, SubsecRound, Utc};
use kws_core::{DnsLabel, OwnerId};
use serde_json::json;
use uuid::Uuid;

use super::{Begun, Claims, Kind, NewObject, NewOperation, Operation, PlatformStore, Quotas};
use crate::platform::{Error, ErrorKind, Role, Scope};

/// Runs every check on `store`, the races with `store` as the only process.
pub async fn run_all(store: &dyn PlatformStore) {
    a_tenant_scope_sees_only_its_tenant(store).await;
    only_the_operator_creates_and_deletes_tenants_and_users(store).await;
    users_and_members(store).await;
    records_round_trip(store).await;
    names_and_unique_keys_are_unique(store).await;
    versions_fence_spec_writes(store).await;
    marks_for_removal_are_kept(store).await;
    lookups_by_impossible_names_are_not_found(store).await;
    lists_page_in_tenant_and_name_order(store).await;
    quotas_limit_counts_and_claims(store).await;
    update_spec_checks_the_claims_that_grow(store).await;
    idempotency_keys_find_the_first_operation(store).await;
    saves_are_fenced_by_holder_and_version(store).await;
    cancel_requests_survive_the_holders_save(store).await;
    operations_list_newest_first(store).await;
    renewals_extend_only_the_holders_unfinished_leases(store).await;
    claims_take_over_expired_operations(store).await;
    deleting_a_tenant_takes_its_members_and_jobs(store).await;
    run_races(&[store]).await;
}

/// Runs every race check with its calls spread over `stores` (several stores on one backend
/// stand for several processes).
///
/// # Panics
/// When `stores` is empty, or a check fails.
pub async fn run_races(stores: &[&dyn PlatformStore]) {
    assert!(!stores.is_empty(), "run_races needs at least one store");
    concurrent_creates_of_one_name_have_one_winner(stores).await;
    concurrent_creates_stay_within_quota(stores).await;
    concurrent_begins_make_one_operation(stores).await;
    a_compensated_operations_key_starts_over(stores).await;
    expired_operations_go_to_one_claimer(stores).await;
}

/// A fresh id for a check's tenants, users and holders: `<tag>-<32 hex digits>`.
fn fresh(tag: &str) -> String {
    format!("{tag}-{}", Uuid::now_v7().simple())
}

fn owner(raw: &str) -> OwnerId {
    OwnerId::parse(raw).expect("a valid owner id")
}

fn label(raw: &str) -> DnsLabel {
    DnsLabel::parse(raw).expect("a valid label")
}

/// Now, to the microsecond: what every backend keeps of a time (PostgreSQL keeps no more), so
/// times the caller gives come back equal.
fn now_micros() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A scope of `tenant` with the lowest role: the store checks visibility, not roles.
fn viewer(tenant: &OwnerId) -> Scope {
    Scope::tenant(tenant.clone(), Role::Viewer)
}

/// Makes tenant `id` with `quotas`, as the operator.
async fn make_tenant(store: &dyn PlatformStore, id: &str, quotas: Quotas) -> OwnerId {
    let id = owner(id);
    store
        .create_tenant(&Scope::Operator, id.clone(), format!("Tenant {id}"), quotas)
        .await
        .expect("create_tenant");
    id
}

/// An object of `kind` named `name`, with no unique key and no claims.
fn new_object(kind: Kind, tenant: &OwnerId, name: &str) -> NewObject {
    NewObject {
        kind,
        tenant: tenant.clone(),
        name: label(name),
        unique: None,
        claims: Claims::default(),
        spec: json!({ "name": name }),
        origin: None,
    }
}

/// An instance of `name` claiming `cpu_millis` and `memory_mb`.
fn instance(tenant: &OwnerId, name: &str, cpu_millis: u64, memory_mb: u64) -> NewObject {
    NewObject {
        claims: Claims { cpu_millis, memory_mb },
        ..new_object(Kind::Instance, tenant, name)
    }
}

/// An operation held by `holder` with a lease of ten minutes.
fn new_operation(
    tenant: &OwnerId,
    holder: &str,
    key: Option<&str>,
    request_hash: &str,
) -> NewOperation {
    let now = now_micros();
    NewOperation {
        tenant: tenant.clone(),
        kind: "launch_instance".to_owned(),
        target: "web".to_owned(),
        idempotency_key: key.map(str::to_owned),
        request_hash: request_hash.to_owned(),
        request: json!({ "name": "web", "hash": request_hash }),
        deadline: now + chrono::Duration::hours(1),
        holder: holder.to_owned(),
        lease_until: now + chrono::Duration::minutes(10),
    }
}

/// An operation of `holder` whose lease passed an hour ago (its holder stopped).
fn expired_operation(tenant: &OwnerId, holder: &str) -> NewOperation {
    let lease_until = now_micros() - chrono::Duration::hours(1);
    NewOperation { lease_until, ..new_operation(tenant, holder, None, "expired") }
}

/// The new operation `begun` holds.
#[track_caller]
fn began_new(begun: Result<Begun, Error>, rule: &str) -> Operation {
    match begun {
        Ok(Begun::New(op)) => op,
        other => panic!("{rule}: expected a new operation, got {other:?}"),
    }
}

/// Begins `new` as the operator and returns the new operation.
async fn begin(store: &dyn PlatformStore, new: NewOperation) -> Operation {
    began_new(store.begin_operation(&Scope::Operator, new).await, "begin_operation")
}

/// The error of `result`, which must be of `kind`.
#[track_caller]
fn fails<T: Debug>(result: Result<T, Error>, kind: ErrorKind, rule: &str) -> Error {
    match result {
        Err(e) if e.kind() == kind => e,
        other => panic!("{rule}: expected {kind:?}, got {other:?}"),
    }
}

/// `result` must be `NotFound` of `what` (`tenant`, `instance`, `operation`, ...).
#[track_caller]
fn not_found<T: Debug>(result: Result<T, Error>, what: &str, rule: &str) {
    match fails(result, ErrorKind::NotFound, rule) {
        Error::NotFound { kind, .. } if kind == what => {}
        other => panic!("{rule}: expected NotFound of a {what}, got {other:?}"),
    }
}

/// `result` must be `Conflict` from `expected` to `actual`.
#[track_caller]
fn conflict<T: Debug>(result: Result<T, Error>, expected: u64, actual: u64, rule: &str) {
    match fails(result, ErrorKind::Conflict, rule) {
        Error::Conflict { expected: e, actual: a, .. } if (e, a) == (expected, actual) => {}
        other => panic!("{rule}: expected Conflict {expected} -> {actual}, got {other:?}"),
    }
}

/// `result` must be `QuotaExceeded` of `resource` at `limit`.
#[track_caller]
fn over_quota<T: Debug>(result: Result<T, Error>, resource: &str, limit: u64, rule: &str) {
    match fails(result, ErrorKind::QuotaExceeded, rule) {
        Error::QuotaExceeded { resource: r, limit: l, .. } if (r, l) == (resource, limit) => {}
        other => panic!("{rule}: expected QuotaExceeded of {resource} at {limit}, got {other:?}"),
    }
}
