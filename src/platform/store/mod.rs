//! The Platform's store of record: tenants with quotas, users and members, tenant objects and
//! operations. The stores are the truth; the engines (interface, firewall, proxy, containers)
//! are made to match them.
//!
//! Backends: [`MemoryStore`] (always on) and, with feature `postgres`, `PostgresStore` (sqlx
//! migrations in `migrations/platform/`). The `testkit` module (feature `testkit`) holds the
//! conformance suite both run, directly and through `Arc<dyn PlatformStore>`.

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod record;
#[cfg(feature = "testkit")]
pub mod testkit;
mod typed;

pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use record::{
    Begun, Claims, Doc, Json, Kind, Member, Meta, NewObject, NewOperation, ObjectRecord, OpState,
    Operation, Page, Quotas, Step, StepState, Tenant, TenantUsage, User,
};
pub use typed::{Object, Observed, PlatformStoreExt, Resource};

use std::{fmt::Debug, time::Duration};

use chrono::{DateTime, Utc};
use kws_core::{DnsLabel, OwnerId};
use uuid::Uuid;

use crate::platform::{Error, Role, Scope};

/// The store of record.
///
/// # Contract
/// - **Scope.** Every call takes the caller's [`Scope`]. A tenant scope sees only its tenant:
///   naming another tenant's object, or the tenant itself, is `NotFound` (also as the `tenant`
///   of a list); lists hold only its objects. Only the operator scope lists across tenants and
///   creates or deletes tenants and users (a tenant scope is `Forbidden`). (Roles are the
///   Platform's business: the store checks visibility only.) Names arrive typed; a lookup by a
///   name no object can have is plainly `NotFound`.
/// - **Uniqueness.** Tenant ids, user names, `(tenant, kind, name)` of objects and the
///   platform-wide `unique` key of objects are unique; a duplicate is `AlreadyExists` and
///   changes nothing. Every check and its write are one atomic step, across processes sharing a
///   backend: of concurrent creates of one name, exactly one wins.
/// - **Quotas.** `create_object` checks the tenant's [`Quotas`] against its usage and the new
///   object's [`Claims`] in the same atomic step as the insert: concurrent creates never take a
///   tenant past its quota (`QuotaExceeded`, nothing written). `update_spec` checks, in the
///   same way, each claimed resource that grows (not the object's count, nor a resource whose
///   claim stays or shrinks, even past a lowered quota).
/// - **Versions.** Every tenant and object carries a version, bumped by each change of it (for
///   objects: of the spec). A write that names a stale version is `Conflict` and changes
///   nothing. `update_status` does not bump the version, and applies only when its
///   observation is not older than the stored one (one of the same instant applies; it says
///   whether it applied). A backend may keep times to the microsecond only (PostgreSQL does).
/// - **Operations.** `begin_operation` with an idempotency key already used by the tenant
///   returns the existing operation when the request hash matches (`Begun::Existing`) and
///   `IdempotencyMismatch` when it does not; the check and the insert are atomic.
///   `save_operation` is fenced: it applies only while the stored operation is held by the
///   saver (`holder`) at the version it read, so a process whose claim was taken over changes
///   nothing (`Conflict`). A save writes the holder's progress only (state, steps, error,
///   result, deadline) and bumps the version; what the operation is (tenant, kind, target,
///   key, request, creation), its holder and its lease stay, and a cancel request stays set.
///   `request_cancel` and `renew_operations` do not bump the version. `claim_expired` hands
///   every `pending` or `running` operation whose lease passed (on the store's clock) to the
///   caller, each to exactly one claimer, with a new version (so the old holder's save is a
///   `Conflict`). Leases longer than [`MAX_LEASE`] are cut to it. Operations outlive their
///   tenant, as history; its idempotency keys do not (a tenant made again starts with none).
/// - **Order.** Lists are sorted by `(tenant, name)` (objects, tenants by id) in byte order;
///   operations newest first, by id (UUIDv7).
#[async_trait::async_trait]
pub trait PlatformStore: Send + Sync + Debug + 'static {
    /// Creates a tenant (operator only).
    async fn create_tenant(
        &self,
        scope: &Scope,
        id: OwnerId,
        display_name: String,
        quotas: Quotas,
    ) -> Result<Tenant, Error>;

    /// A tenant.
    async fn get_tenant(&self, scope: &Scope, id: &OwnerId) -> Result<Tenant, Error>;

    /// The tenants the scope sees.
    async fn list_tenants(&self, scope: &Scope) -> Result<Vec<Tenant>, Error>;

    /// Changes a tenant's name and quotas, at `expected_version`.
    async fn update_tenant(
        &self,
        scope: &Scope,
        id: &OwnerId,
        expected_version: u64,
        display_name: String,
        quotas: Quotas,
    ) -> Result<Tenant, Error>;

    /// Deletes a tenant that owns no object but jobs (operator only), with its members and its
    /// job history; `InUse` while it owns any other object. Its operations stay, as history.
    async fn delete_tenant(&self, scope: &Scope, id: &OwnerId) -> Result<(), Error>;

    /// Creates a user (operator only).
    async fn create_user(&self, scope: &Scope, user: User) -> Result<User, Error>;

    /// A user (operator only; a tenant scope sees the users of its members).
    async fn get_user(&self, scope: &Scope, name: &DnsLabel) -> Result<User, Error>;

    /// Every user the scope sees, by name: all of them for the operator, the users of its
    /// members for a tenant scope.
    async fn list_users(&self, scope: &Scope) -> Result<Vec<User>, Error>;

    /// Deletes a user and its memberships (operator only).
    async fn delete_user(&self, scope: &Scope, name: &DnsLabel) -> Result<(), Error>;

    /// Makes `user` a member of `tenant` with `role`, or changes its role.
    async fn put_member(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        user: &DnsLabel,
        role: Role,
    ) -> Result<Member, Error>;

    /// Ends a membership; `NotFound` when there was none.
    async fn remove_member(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        user: &DnsLabel,
    ) -> Result<(), Error>;

    /// A tenant's members, by user name.
    async fn members(&self, scope: &Scope, tenant: &OwnerId) -> Result<Vec<Member>, Error>;

    /// A user's memberships that the scope sees, by tenant.
    async fn memberships(&self, scope: &Scope, user: &DnsLabel) -> Result<Vec<Member>, Error>;

    /// Creates an object, checking uniqueness and the tenant's quota atomically with the insert.
    async fn create_object(&self, scope: &Scope, new: NewObject) -> Result<ObjectRecord, Error>;

    /// An object by tenant, kind and name.
    async fn get_object(
        &self,
        scope: &Scope,
        kind: Kind,
        tenant: &OwnerId,
        name: &str,
    ) -> Result<ObjectRecord, Error>;

    /// An object by id.
    async fn find_object(&self, scope: &Scope, id: Uuid) -> Result<ObjectRecord, Error>;

    /// Objects of `kind`: of `tenant`, or of every tenant the scope sees when `None`.
    async fn list_objects(
        &self,
        scope: &Scope,
        kind: Kind,
        tenant: Option<&OwnerId>,
        page: &Page,
    ) -> Result<Vec<ObjectRecord>, Error>;

    /// Replaces an object's spec and claims, at `expected_version`; the quota is checked for
    /// grown claims.
    #[allow(clippy::too_many_arguments)] // an object's key is three of them
    async fn update_spec(
        &self,
        scope: &Scope,
        kind: Kind,
        tenant: &OwnerId,
        name: &str,
        expected_version: u64,
        spec: Json,
        claims: Claims,
    ) -> Result<ObjectRecord, Error>;

    /// Records an observation of an object; `Ok(false)` when a newer one is stored.
    async fn update_status(
        &self,
        scope: &Scope,
        kind: Kind,
        tenant: &OwnerId,
        name: &str,
        status: Json,
        observed_at: DateTime<Utc>,
    ) -> Result<bool, Error>;

    /// Marks an object as being removed (its `deleting` time, once; a second mark keeps the
    /// first time) and bumps its version; returns it.
    async fn mark_deleting(
        &self,
        scope: &Scope,
        kind: Kind,
        tenant: &OwnerId,
        name: &str,
    ) -> Result<ObjectRecord, Error>;

    /// Deletes an object (at `expected_version`, when given) and returns what it was.
    async fn delete_object(
        &self,
        scope: &Scope,
        kind: Kind,
        tenant: &OwnerId,
        name: &str,
        expected_version: Option<u64>,
    ) -> Result<ObjectRecord, Error>;

    /// What a tenant uses.
    async fn usage(&self, scope: &Scope, tenant: &OwnerId) -> Result<TenantUsage, Error>;

    /// Records a new operation, or finds the one its idempotency key made.
    ///
    /// A key whose operation was compensated (`OpState::starts_over`) is taken by the new
    /// operation: the retry of a request that failed, and was undone, runs again (once,
    /// however many retries race).
    async fn begin_operation(&self, scope: &Scope, new: NewOperation) -> Result<Begun, Error>;

    /// An operation.
    async fn get_operation(&self, scope: &Scope, id: Uuid) -> Result<Operation, Error>;

    /// Operations of `tenant` (of every tenant the scope sees when `None`), newest first,
    /// older than `before` when given.
    async fn list_operations(
        &self,
        scope: &Scope,
        tenant: Option<&OwnerId>,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Operation>, Error>;

    /// Saves an operation its holder changed (fenced: see the contract); returns it with its
    /// new version.
    async fn save_operation(&self, op: &Operation) -> Result<Operation, Error>;

    /// Asks a running operation to stop: sets `cancel_requested`; its holder undoes it.
    async fn request_cancel(&self, scope: &Scope, id: Uuid) -> Result<Operation, Error>;

    /// Extends the lease of every unfinished operation `holder` holds to now + `lease`.
    async fn renew_operations(&self, holder: &str, lease: Duration) -> Result<u64, Error>;

    /// Hands every unfinished operation whose lease passed to `holder` (lease now + `lease`).
    async fn claim_expired(&self, holder: &str, lease: Duration) -> Result<Vec<Operation>, Error>;
}

/// The longest lease a store grants (1,000 years): a longer one is cut to it, so `now + lease`
/// stays a time every backend can keep (`Duration::MAX` means "as long as possible").
pub const MAX_LEASE: Duration = Duration::from_secs(1000 * 366 * 24 * 60 * 60);

/// `lease`, cut to [`MAX_LEASE`].
pub(crate) fn capped_lease(lease: Duration) -> Duration {
    lease.min(MAX_LEASE)
}

/// Whether `new` claims more of any resource than `old`.
pub(crate) fn claims_grow(old: Claims, new: Claims) -> bool {
    new.cpu_millis > old.cpu_millis || new.memory_mb > old.memory_mb
}

/// The quota check of `update_spec`: whether an object of `tenant` whose claims go from `old`
/// to `new` still fits, beside `usage` (which counts the object with `old`). The object itself
/// is counted already, and only the resources that grow are checked: a tenant already past a
/// lowered CPU quota may still give an instance more memory.
pub(crate) fn check_grown_claims(
    quotas: &Quotas,
    tenant: &OwnerId,
    usage: &TenantUsage,
    kind: Kind,
    old: Claims,
    new: Claims,
) -> Result<(), Error> {
    let mut others = usage.clone();
    others.cpu_millis = others.cpu_millis.saturating_sub(old.cpu_millis);
    others.memory_mb = others.memory_mb.saturating_sub(old.memory_mb);
    let grown = Quotas {
        cpu_millis: quotas.cpu_millis.filter(|_| new.cpu_millis > old.cpu_millis),
        memory_mb: quotas.memory_mb.filter(|_| new.memory_mb > old.memory_mb),
        ..Quotas::default()
    };
    grown.check(tenant, &others, kind, new)
}

/// `NotFound` of the tenant a list names (`tenant`) when the scope does not see it.
pub(crate) fn listed_tenant_visible(scope: &Scope, tenant: Option<&OwnerId>) -> Result<(), Error> {
    match tenant.filter(|t| !scope.sees(t)) {
        Some(hidden) => Err(Error::not_found("tenant", hidden)),
        None => Ok(()),
    }
}

/// The error for a taken platform-wide unique key (`hostname:<label>`, `public_key:<key>`).
pub(crate) fn unique_taken(key: &str) -> Error {
    let (space, value) = key.split_once(':').unwrap_or(("name", key));
    let kind = match space {
        "hostname" => "hostname",
        "public_key" => "public key",
        _ => "name",
    };
    Error::AlreadyExists { kind, name: value.to_owned() }
}

/// The `NotFound` of an object.
pub(crate) fn object_not_found(kind: Kind, tenant: &OwnerId, name: &str) -> Error {
    Error::NotFound { kind: kind.as_str(), name: format!("{tenant}/{name}") }
}

/// The `AlreadyExists` of an object's name.
pub(crate) fn object_exists(kind: Kind, tenant: &OwnerId, name: &str) -> Error {
    Error::AlreadyExists { kind: kind.as_str(), name: format!("{tenant}/{name}") }
}
