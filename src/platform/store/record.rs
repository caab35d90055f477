//! What the store keeps: tenants, users and members, tenant objects (instances, apps, devices,
//! databases, jobs) and operations.
//!
//! Tenant objects follow one shape, after Kubernetes' objects: metadata with a version, a
//! desired `spec` that users change (every change bumps the version; a write that carries a
//! stale version is a `Conflict`), and an observed `status` that observers write with the time
//! they observed it (a status write does not bump the version, so a user's edit never conflicts
//! with a status refresh, and an older observation never overwrites a newer one). A status that
//! nobody could observe is `null`: unknown, never a guess.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kws_core::{DnsLabel, OwnerId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::platform::{Error, scope::Role};

/// A value as the store keeps it.
pub type Json = serde_json::Value;

/// A JSON document of a record (its `spec` or `status`), shared: cloning a record copies a
/// pointer, not a tree, and a reader can tell by [`Doc::same`] that a document is the one it
/// saw before (the store replaces a document on every write, never changes it in place).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Doc(Arc<Json>);

impl Doc {
    /// `null`: nothing observed.
    pub fn null() -> Self {
        Self::default()
    }

    /// Whether `self` and `other` are the same document (not merely equal ones).
    pub fn same(&self, other: &Doc) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl From<Json> for Doc {
    fn from(value: Json) -> Self {
        Self(Arc::new(value))
    }
}

impl std::ops::Deref for Doc {
    type Target = Json;

    fn deref(&self) -> &Json {
        &self.0
    }
}

impl PartialEq<Json> for Doc {
    fn eq(&self, other: &Json) -> bool {
        *self.0 == *other
    }
}

impl Serialize for Doc {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Json::deserialize(deserializer).map(Doc::from)
    }
}

/// The kinds of tenant objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A container with a workspace and an IDE.
    Instance,
    /// A public route to a port of an instance.
    App,
    /// A VPN device (WireGuard peer).
    Device,
    /// A managed PostgreSQL database.
    Database,
    /// A code-execution job.
    Job,
}

impl Kind {
    /// Every kind, in the order a tenant's objects are removed (dependents first).
    pub const ALL: [Kind; 5] = [Kind::App, Kind::Instance, Kind::Device, Kind::Database, Kind::Job];

    /// The kind's name, as the store and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Instance => "instance",
            Kind::App => "app",
            Kind::Device => "device",
            Kind::Database => "database",
            Kind::Job => "job",
        }
    }

    /// Parses a kind's name.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == raw)
            .ok_or_else(|| Error::invalid("kind", format!("unknown kind {:?}", raw)))
    }
}

/// What an object counts against its tenant's quota beside itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// CPU, in thousandths of a CPU.
    pub cpu_millis: u64,
    /// Memory, in MiB.
    pub memory_mb: u64,
}

/// A tenant's limits. `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quotas {
    /// Instances.
    pub instances: Option<u64>,
    /// CPU over all instances, in thousandths of a CPU.
    pub cpu_millis: Option<u64>,
    /// Memory over all instances, in MiB.
    pub memory_mb: Option<u64>,
    /// VPN devices.
    pub devices: Option<u64>,
    /// Published apps.
    pub apps: Option<u64>,
    /// Databases.
    pub databases: Option<u64>,
}

impl Quotas {
    /// The count limit of `kind`.
    pub fn count_limit(&self, kind: Kind) -> Option<u64> {
        match kind {
            Kind::Instance => self.instances,
            Kind::App => self.apps,
            Kind::Device => self.devices,
            Kind::Database => self.databases,
            Kind::Job => None,
        }
    }

    /// Checks that a new object of `kind` claiming `claims` fits beside `usage`.
    pub fn check(
        &self,
        tenant: &OwnerId,
        usage: &TenantUsage,
        kind: Kind,
        claims: Claims,
    ) -> Result<(), Error> {
        let over = |resource: &'static str, limit: u64| Error::QuotaExceeded {
            tenant: tenant.to_string(),
            resource,
            limit,
        };
        if let Some(limit) = self.count_limit(kind) {
            if usage.count(kind) + 1 > limit {
                return Err(over(plural(kind), limit));
            }
        }
        if let Some(limit) = self.cpu_millis {
            if claims.cpu_millis > 0 && usage.cpu_millis + claims.cpu_millis > limit {
                return Err(over("cpu_millis", limit));
            }
        }
        if let Some(limit) = self.memory_mb {
            if claims.memory_mb > 0 && usage.memory_mb + claims.memory_mb > limit {
                return Err(over("memory_mb", limit));
            }
        }
        Ok(())
    }
}

fn plural(kind: Kind) -> &'static str {
    match kind {
        Kind::Instance => "instances",
        Kind::App => "apps",
        Kind::Device => "devices",
        Kind::Database => "databases",
        Kind::Job => "jobs",
    }
}

/// What a tenant uses now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantUsage {
    /// Instances.
    pub instances: u64,
    /// Apps.
    pub apps: u64,
    /// Devices.
    pub devices: u64,
    /// Databases.
    pub databases: u64,
    /// Jobs kept in the history.
    pub jobs: u64,
    /// CPU claimed by its objects.
    pub cpu_millis: u64,
    /// Memory claimed by its objects.
    pub memory_mb: u64,
}

impl TenantUsage {
    /// The count of `kind`.
    pub fn count(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Instance => self.instances,
            Kind::App => self.apps,
            Kind::Device => self.devices,
            Kind::Database => self.databases,
            Kind::Job => self.jobs,
        }
    }

    /// Counts one more object of `kind` with `claims`.
    pub fn add(&mut self, kind: Kind, claims: Claims) {
        match kind {
            Kind::Instance => self.instances += 1,
            Kind::App => self.apps += 1,
            Kind::Device => self.devices += 1,
            Kind::Database => self.databases += 1,
            Kind::Job => self.jobs += 1,
        }
        self.cpu_millis += claims.cpu_millis;
        self.memory_mb += claims.memory_mb;
    }
}

/// A tenant: the owner of objects, with its quotas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Its id: it names its networks, peers, databases and containers.
    pub id: OwnerId,
    /// A name for people.
    pub display_name: String,
    /// Its limits.
    pub quotas: Quotas,
    /// Bumped by every change.
    pub version: u64,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A user: someone who signs in and is a member of tenants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The login name.
    pub name: DnsLabel,
    /// A name for people.
    pub display_name: String,
    /// Whether the user is a platform operator (sees every tenant).
    pub operator: bool,
    /// When the user was made.
    pub created_at: DateTime<Utc>,
}

/// A user's role in a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The tenant.
    pub tenant: OwnerId,
    /// The user.
    pub user: DnsLabel,
    /// The role.
    pub role: Role,
    /// When the membership was made or last changed.
    pub since: DateTime<Utc>,
}

/// The metadata of a tenant object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Unique over every object of every kind.
    pub id: Uuid,
    /// Its kind.
    pub kind: Kind,
    /// The tenant that owns it.
    pub tenant: OwnerId,
    /// Its name, unique per tenant and kind.
    pub name: DnsLabel,
    /// The version of its spec; bumped by every spec change.
    pub version: u64,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When its spec last changed.
    pub updated_at: DateTime<Utc>,
    /// Set when its removal began: from then on nothing makes it again (reconcile finishes
    /// the removal instead), as Kubernetes' `deletionTimestamp`.
    pub deleting: Option<DateTime<Utc>>,
}

/// A tenant object as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectRecord {
    /// Who and what it is.
    pub meta: Meta,
    /// A key unique over the whole platform beside its name, when its kind has one: the
    /// hostname label of instances and apps (`host:<label>`, one namespace for both, since
    /// both live at `<label>.<domain>`), the public key of devices (`wg:<key>`).
    pub unique: Option<String>,
    /// What it counts against the tenant's quota.
    pub claims: Claims,
    /// The desired state.
    pub spec: Doc,
    /// The observed state; `null` when unknown.
    pub status: Doc,
    /// When `status` was observed.
    pub observed_at: Option<DateTime<Utc>>,
    /// The operation that made it, if one did: the undo of that operation deletes the object
    /// only when it made it (not when its create lost to another one of the same name).
    pub origin: Option<Uuid>,
}

/// An object to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewObject {
    /// Its kind.
    pub kind: Kind,
    /// Its tenant.
    pub tenant: OwnerId,
    /// Its name.
    pub name: DnsLabel,
    /// Its platform-wide unique key, if its kind has one.
    pub unique: Option<String>,
    /// What it claims of the quota.
    pub claims: Claims,
    /// Its desired state.
    pub spec: Json,
    /// The operation making it, if any.
    pub origin: Option<Uuid>,
}

/// The state of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpState {
    /// Recorded, not started.
    Pending,
    /// Its steps are running (or it was interrupted; the reaper finishes it).
    Running,
    /// Every step finished.
    Succeeded,
    /// It failed and not everything could be undone (the error says what); reconcile removes
    /// what is left.
    Failed,
    /// It failed, was cancelled or passed its deadline, and every finished step was undone.
    Compensated,
}

impl OpState {
    /// Whether a request with the key of an operation in this state starts over: the
    /// operation failed and everything it did was undone, so nothing of it is left to find.
    pub fn starts_over(self) -> bool {
        self == OpState::Compensated
    }

    /// Whether the operation has ended.
    pub fn is_final(self) -> bool {
        matches!(self, OpState::Succeeded | OpState::Failed | OpState::Compensated)
    }

    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            OpState::Pending => "pending",
            OpState::Running => "running",
            OpState::Succeeded => "succeeded",
            OpState::Failed => "failed",
            OpState::Compensated => "compensated",
        }
    }
}

/// The state of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Begun: its effect may or may not have happened.
    Started,
    /// Finished.
    Done,
    /// Undone by compensation.
    Undone,
    /// Its undo failed (the operation's error says why).
    UndoFailed,
}

/// One step of an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The step's name (`lease`, `peer`, `container`, ...).
    pub name: String,
    /// Where it is.
    pub state: StepState,
    /// When it last changed.
    pub at: DateTime<Utc>,
}

/// A user-level flow, recorded so that a crash in its middle is finished or undone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// Its id.
    pub id: Uuid,
    /// The tenant it acts for.
    pub tenant: OwnerId,
    /// What it does (`add_device`, `launch_instance`, ...).
    pub kind: String,
    /// The name of the object it acts on.
    pub target: String,
    /// The client's idempotency key, if it sent one.
    pub idempotency_key: Option<String>,
    /// A digest of the request, to tell a retry from another request with the same key.
    pub request_hash: String,
    /// The request, without secrets.
    pub request: Json,
    /// Where it is.
    pub state: OpState,
    /// Its steps so far, in order.
    pub steps: Vec<Step>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// What it made (no secrets), once it succeeded.
    pub result: Json,
    /// When it is given up and undone.
    pub deadline: DateTime<Utc>,
    /// Whether a cancel was asked for.
    pub cancel_requested: bool,
    /// The process running it (`None` when nobody does).
    pub holder: Option<String>,
    /// Until when the holder's claim stands; past it, another process's reaper takes over.
    pub lease_until: Option<DateTime<Utc>>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Bumped by every save.
    pub version: u64,
}

/// An operation to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOperation {
    /// The tenant.
    pub tenant: OwnerId,
    /// What it does.
    pub kind: String,
    /// The object it acts on.
    pub target: String,
    /// The client's idempotency key.
    pub idempotency_key: Option<String>,
    /// A digest of the request.
    pub request_hash: String,
    /// The request, without secrets.
    pub request: Json,
    /// When it is given up.
    pub deadline: DateTime<Utc>,
    /// The process that will run it.
    pub holder: String,
    /// Until when its claim stands.
    pub lease_until: DateTime<Utc>,
}

/// What `begin_operation` found.
#[derive(Debug, Clone, PartialEq)]
pub enum Begun {
    /// A new operation, `running`, held by the caller.
    New(Operation),
    /// The operation an earlier request with the same idempotency key (and the same request)
    /// made; the caller waits for it or returns its result.
    Existing(Operation),
}

/// Where a list starts and how long it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Only objects after this `(tenant, name)` (the last one of the previous page).
    pub after: Option<(OwnerId, String)>,
    /// At most this many (at least 1, at most 1,000).
    pub limit: usize,
}

impl Default for Page {
    fn default() -> Self {
        Page { after: None, limit: 100 }
    }
}

impl Page {
    /// The largest page.
    pub const MAX: usize = 1000;

    /// Every object (pages of the largest size are fetched by the caller in turn).
    pub fn first(limit: usize) -> Self {
        Page { after: None, limit: limit.clamp(1, Self::MAX) }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit.clamp(1, Self::MAX)
    }

    pub(crate) fn admits(&self, tenant: &OwnerId, name: &str) -> bool {
        match &self.after {
            None => true,
            Some((t, n)) => (tenant, name) > (t, n.as_str()),
        }
    }
}
