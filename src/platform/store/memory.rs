//! The in-memory store: one lock over plain maps. Every call is one critical section, so each is
//! atomic; nothing survives the process.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use chrono::{DateTime, Utc};
use kws_core::{DnsLabel, OwnerId};
use uuid::Uuid;

use super::{
    Begun, Claims, Doc, Json, Kind, Member, Meta, NewObject, NewOperation, ObjectRecord, OpState,
    Operation, Page, PlatformStore, Quotas, Tenant, TenantUsage, User, capped_lease,
    check_grown_claims, claims_grow, listed_tenant_visible, object_exists, object_not_found,
    unique_taken,
};
use crate::platform::{Error, Role, Scope};

/// The in-memory [`PlatformStore`].
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

type ObjectKey = (OwnerId, Kind, String);

#[derive(Debug, Default)]
struct State {
    tenants: BTreeMap<OwnerId, Tenant>,
    users: BTreeMap<DnsLabel, User>,
    members: BTreeMap<(OwnerId, DnsLabel), Member>,
    objects: BTreeMap<ObjectKey, ObjectRecord>,
    ids: HashMap<Uuid, ObjectKey>,
    unique: HashMap<String, Uuid>,
    operations: BTreeMap<Uuid, Operation>,
    idempotency: HashMap<(OwnerId, String), Uuid>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `now + lease`. Leases are capped (`capped_lease`), so the sum is a time chrono can hold;
/// `DateTime + Duration` would panic past year 262,143 (a lease of `Duration::MAX`).
fn lease_end(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(capped_lease(lease))
        .ok()
        .and_then(|lease| now.checked_add_signed(lease))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl State {
    fn tenant(&self, scope: &Scope, id: &OwnerId) -> Result<&Tenant, Error> {
        self.tenants
            .get(id)
            .filter(|_| scope.sees(id))
            .ok_or_else(|| Error::not_found("tenant", id))
    }

    fn object(&self, scope: &Scope, key: &ObjectKey) -> Result<&ObjectRecord, Error> {
        self.objects
            .get(key)
            .filter(|_| scope.sees(&key.0))
            .ok_or_else(|| object_not_found(key.1, &key.0, &key.2))
    }

    fn usage(&self, tenant: &OwnerId) -> TenantUsage {
        let mut usage = TenantUsage::default();
        for ((t, kind, _), record) in &self.objects {
            if t == tenant {
                usage.add(*kind, record.claims);
            }
        }
        usage
    }

    fn operation(&self, scope: &Scope, id: Uuid) -> Result<&Operation, Error> {
        self.operations
            .get(&id)
            .filter(|op| scope.sees(&op.tenant))
            .ok_or_else(|| Error::not_found("operation", id))
    }
}

#[async_trait::async_trait]
impl PlatformStore for MemoryStore {
    async fn create_tenant(
        &self,
        scope: &Scope,
        id: OwnerId,
        display_name: String,
        quotas: Quotas,
    ) -> Result<Tenant, Error> {
        scope.require_operator()?;
        let mut state = self.state();
        if state.tenants.contains_key(&id) {
            return Err(Error::AlreadyExists { kind: "tenant", name: id.to_string() });
        }
        // Idempotency keys of an earlier tenant of this id are forgotten.
        state.idempotency.retain(|(t, _), _| t != &id);
        let now = Utc::now();
        let tenant = Tenant {
            id: id.clone(),
            display_name,
            quotas,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        state.tenants.insert(id, tenant.clone());
        Ok(tenant)
    }

    async fn get_tenant(&self, scope: &Scope, id: &OwnerId) -> Result<Tenant, Error> {
        self.state().tenant(scope, id).cloned()
    }

    async fn list_tenants(&self, scope: &Scope) -> Result<Vec<Tenant>, Error> {
        let state = self.state();
        Ok(state.tenants.values().filter(|t| scope.sees(&t.id)).cloned().collect())
    }

    async fn update_tenant(
        &self,
        scope: &Scope,
        id: &OwnerId,
        expected_version: u64,
        display_name: String,
        quotas: Quotas,
    ) -> Result<Tenant, Error> {
        let mut state = self.state();
        let actual = state.tenant(scope, id)?.version;
        if actual != expected_version {
            return Err(Error::Conflict {
                kind: "tenant",
                name: id.to_string(),
                expected: expected_version,
                actual,
            });
        }
        let tenant = state.tenants.get_mut(id).ok_or_else(|| Error::not_found("tenant", id))?;
        tenant.display_name = display_name;
        tenant.quotas = quotas;
        tenant.version += 1;
        tenant.updated_at = Utc::now();
        Ok(tenant.clone())
    }

    async fn delete_tenant(&self, scope: &Scope, id: &OwnerId) -> Result<(), Error> {
        scope.require_operator()?;
        let mut state = self.state();
        state.tenant(scope, id)?;
        let usage = state.usage(id);
        let owned = usage.instances + usage.apps + usage.devices + usage.databases;
        if owned > 0 {
            return Err(Error::InUse {
                what: format!("tenant {id}"),
                reason: format!("it owns {owned} objects"),
            });
        }
        let jobs: Vec<ObjectKey> = state.objects.keys().filter(|k| &k.0 == id).cloned().collect();
        for key in jobs {
            if let Some(record) = state.objects.remove(&key) {
                state.ids.remove(&record.meta.id);
                if let Some(unique) = &record.unique {
                    state.unique.remove(unique);
                }
            }
        }
        state.members.retain(|(t, _), _| t != id);
        state.tenants.remove(id);
        Ok(())
    }

    async fn create_user(&self, scope: &Scope, user: User) -> Result<User, Error> {
        scope.require_operator()?;
        let mut state = self.state();
        if state.users.contains_key(&user.name) {
            return Err(Error::AlreadyExists { kind: "user", name: user.name.to_string() });
        }
        state.users.insert(user.name.clone(), user.clone());
        Ok(user)
    }

    async fn get_user(&self, scope: &Scope, name: &DnsLabel) -> Result<User, Error> {
        let state = self.state();
        let visible = match scope.confined_to() {
            None => true,
            Some(tenant) => state.members.contains_key(&(tenant.clone(), name.clone())),
        };
        state
            .users
            .get(name)
            .filter(|_| visible)
            .cloned()
            .ok_or_else(|| Error::not_found("user", name))
    }

    async fn list_users(&self, scope: &Scope) -> Result<Vec<User>, Error> {
        let state = self.state();
        let visible = |name: &DnsLabel| match scope.confined_to() {
            None => true,
            Some(tenant) => state.members.contains_key(&(tenant.clone(), name.clone())),
        };
        Ok(state.users.values().filter(|u| visible(&u.name)).cloned().collect())
    }

    async fn delete_user(&self, scope: &Scope, name: &DnsLabel) -> Result<(), Error> {
        scope.require_operator()?;
        let mut state = self.state();
        state.users.remove(name).ok_or_else(|| Error::not_found("user", name))?;
        state.members.retain(|(_, u), _| u != name);
        Ok(())
    }

    async fn put_member(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        user: &DnsLabel,
        role: Role,
    ) -> Result<Member, Error> {
        let mut state = self.state();
        state.tenant(scope, tenant)?;
        if !state.users.contains_key(user) {
            return Err(Error::not_found("user", user));
        }
        let member = Member { tenant: tenant.clone(), user: user.clone(), role, since: Utc::now() };
        state.members.insert((tenant.clone(), user.clone()), member.clone());
        Ok(member)
    }

    async fn remove_member(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        user: &DnsLabel,
    ) -> Result<(), Error> {
        let mut state = self.state();
        state.tenant(scope, tenant)?;
        state
            .members
            .remove(&(tenant.clone(), user.clone()))
            .map(drop)
            .ok_or_else(|| Error::not_found("member", format!("{tenant}/{user}")))
    }

    async fn members(&self, scope: &Scope, tenant: &OwnerId) -> Result<Vec<Member>, Error> {
        let state = self.state();
        state.tenant(scope, tenant)?;
        Ok(state.members.values().filter(|m| &m.tenant == tenant).cloned().collect())
    }

    async fn memberships(&self, scope: &Scope, user: &DnsLabel) -> Result<Vec<Member>, Error> {
        let state = self.state();
        Ok(state
            .members
            .values()
            .filter(|m| &m.user == user && scope.sees(&m.tenant))
            .cloned()
            .collect())
    }

    async fn create_object(&self, scope: &Scope, new: NewObject) -> Result<ObjectRecord, Error> {
        let mut state = self.state();
        let quotas = state.tenant(scope, &new.tenant)?.quotas;
        let key = (new.tenant.clone(), new.kind, new.name.to_string());
        if state.objects.contains_key(&key) {
            return Err(object_exists(new.kind, &new.tenant, new.name.as_str()));
        }
        if let Some(unique) = &new.unique {
            if state.unique.contains_key(unique) {
                return Err(unique_taken(unique));
            }
        }
        quotas.check(&new.tenant, &state.usage(&new.tenant), new.kind, new.claims)?;
        let now = Utc::now();
        let record = ObjectRecord {
            meta: Meta {
                id: Uuid::now_v7(),
                kind: new.kind,
                tenant: new.tenant,
                name: new.name,
                version: 1,
                created_at: now,
                updated_at: now,
                deleting: None,
            },
            unique: new.unique,
            claims: new.claims,
            spec: new.spec.into(),
            status: Doc::null(),
            observed_at: None,
            origin: new.origin,
        };
        if let Some(unique) = &record.unique {
            state.unique.insert(unique.clone(), record.meta.id);
        }
        state.ids.insert(record.meta.id, key.clone());
        state.objects.insert(key, record.clone());
        Ok(record)
    }

    async fn get_object(
        &self,
        scope: &Scope,
        kind: Kind,
        tenant: &OwnerId,
        name: &str,
    ) -> Result<ObjectRecord, Error> {
        self.state().object(scope, &(tenant.clone(), kind, name.to_owned())).cloned()
    }

    async fn find_object(&self, scope: &Scope, id: Uuid) -> Result<ObjectRecord, Error> {
        let state = self.state();
        let key = state.ids.get(&id).ok_or_else(|| Error::not_found("object", id))?;
        state.object(scope, key).cloned().map_err(|_| Error::not_found("object", id))
    }

    async fn list_objects(
        &self,
        scope: &Scope,
        kind: Kind,
        tenant: Option<&OwnerId>,
        page: &Page,
    ) -> Result<Vec<ObjectRecord>, Error> {
        let state = self.state();
        if let Some(tenant) = tenant {
            state.tenant(scope, tenant)?;
        }
        Ok(state
            .objects
            .iter()
            .filter(|((t, k, name), _)| {
                *k == kind
                    && scope.sees(t)
                    && tenant.is_none_or(|want| want == t)
                    && page.admits(t, name)
            })
            .take(page.limit())
            .map(|(_, record)| record.clone())
            .collect())
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
        let mut state = self.state();
        let key = (tenant.clone(), kind, name.to_owned());
        let current = state.object(scope, &key)?;
        if current.meta.version != expected_version {
            return Err(Error::Conflict {
                kind: kind.as_str(),
                name: format!("{tenant}/{name}"),
                expected: expected_version,
                actual: current.meta.version,
            });
        }
        let old = current.claims;
        if claims_grow(old, claims) {
            let quotas = state.tenant(scope, tenant)?.quotas;
            check_grown_claims(&quotas, tenant, &state.usage(tenant), kind, old, claims)?;
        }
        let record =
            state.objects.get_mut(&key).ok_or_else(|| object_not_found(kind, tenant, name))?;
        record.spec = spec.into();
        record.claims = claims;
        record.meta.version += 1;
        record.meta.updated_at = Utc::now();
        Ok(record.clone())
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
        let mut state = self.state();
        let key = (tenant.clone(), kind, name.to_owned());
        state.object(scope, &key)?;
        let record =
            state.objects.get_mut(&key).ok_or_else(|| object_not_found(kind, tenant, name))?;
        if record.observed_at.is_some_and(|at| at > observed_at) {
            return Ok(false);
        }
        record.status = status.into();
        record.observed_at = Some(observed_at);
        Ok(true)
    }

    async fn mark_deleting(
        &self,
        scope: &Scope,
        kind: Kind,
        tenant: &OwnerId,
        name: &str,
    ) -> Result<ObjectRecord, Error> {
        let mut state = self.state();
        let key = (tenant.clone(), kind, name.to_owned());
        state.object(scope, &key)?;
        let record =
            state.objects.get_mut(&key).ok_or_else(|| object_not_found(kind, tenant, name))?;
        if record.meta.deleting.is_none() {
            record.meta.deleting = Some(Utc::now());
            record.meta.version += 1;
        }
        Ok(record.clone())
    }

    async fn delete_object(
        &self,
        scope: &Scope,
        kind: Kind,
        tenant: &OwnerId,
        name: &str,
        expected_version: Option<u64>,
    ) -> Result<ObjectRecord, Error> {
        let mut state = self.state();
        let key = (tenant.clone(), kind, name.to_owned());
        let current = state.object(scope, &key)?;
        if let Some(expected) = expected_version {
            if current.meta.version != expected {
                return Err(Error::Conflict {
                    kind: kind.as_str(),
                    name: format!("{tenant}/{name}"),
                    expected,
                    actual: current.meta.version,
                });
            }
        }
        let record =
            state.objects.remove(&key).ok_or_else(|| object_not_found(kind, tenant, name))?;
        state.ids.remove(&record.meta.id);
        if let Some(unique) = &record.unique {
            state.unique.remove(unique);
        }
        Ok(record)
    }

    async fn usage(&self, scope: &Scope, tenant: &OwnerId) -> Result<TenantUsage, Error> {
        let state = self.state();
        state.tenant(scope, tenant)?;
        Ok(state.usage(tenant))
    }

    async fn begin_operation(&self, scope: &Scope, new: NewOperation) -> Result<Begun, Error> {
        let mut state = self.state();
        state.tenant(scope, &new.tenant)?;
        if let Some(key) = &new.idempotency_key {
            if let Some(id) = state.idempotency.get(&(new.tenant.clone(), key.clone())) {
                let existing = state.operations.get(id).cloned().ok_or_else(|| {
                    Error::backend("store", format!("idempotency key {key:?} names no operation"))
                })?;
                if existing.request_hash != new.request_hash {
                    return Err(Error::IdempotencyMismatch { key: key.clone() });
                }
                // A compensated operation's key goes to the new one below (under this lock).
                if !existing.state.starts_over() {
                    return Ok(Begun::Existing(existing));
                }
            }
        }
        let now = Utc::now();
        let op = Operation {
            id: Uuid::now_v7(),
            tenant: new.tenant,
            kind: new.kind,
            target: new.target,
            idempotency_key: new.idempotency_key,
            request_hash: new.request_hash,
            request: new.request,
            state: OpState::Running,
            steps: Vec::new(),
            error: None,
            result: Json::Null,
            deadline: new.deadline,
            cancel_requested: false,
            holder: Some(new.holder),
            lease_until: Some(new.lease_until),
            created_at: now,
            updated_at: now,
            version: 1,
        };
        if let Some(key) = &op.idempotency_key {
            state.idempotency.insert((op.tenant.clone(), key.clone()), op.id);
        }
        state.operations.insert(op.id, op.clone());
        Ok(Begun::New(op))
    }

    async fn get_operation(&self, scope: &Scope, id: Uuid) -> Result<Operation, Error> {
        self.state().operation(scope, id).cloned()
    }

    async fn list_operations(
        &self,
        scope: &Scope,
        tenant: Option<&OwnerId>,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Operation>, Error> {
        listed_tenant_visible(scope, tenant)?;
        let state = self.state();
        Ok(state
            .operations
            .values()
            .rev()
            .filter(|op| {
                scope.sees(&op.tenant)
                    && tenant.is_none_or(|t| t == &op.tenant)
                    && before.is_none_or(|b| op.id < b)
            })
            .take(limit.clamp(1, Page::MAX))
            .cloned()
            .collect())
    }

    async fn save_operation(&self, op: &Operation) -> Result<Operation, Error> {
        let mut state = self.state();
        let stored =
            state.operations.get_mut(&op.id).ok_or_else(|| Error::not_found("operation", op.id))?;
        if stored.version != op.version || stored.holder != op.holder {
            return Err(Error::Conflict {
                kind: "operation",
                name: op.id.to_string(),
                expected: op.version,
                actual: stored.version,
            });
        }
        // The saver writes its progress (state, steps, error, result, deadline). What the
        // operation is (tenant, kind, target, idempotency key, request, creation) stays as
        // recorded, and the cancel flag and the lease are not the saver's to change either:
        // `request_cancel`, `renew_operations` and `claim_expired` own them.
        stored.state = op.state;
        stored.steps = op.steps.clone();
        stored.error = op.error.clone();
        stored.result = op.result.clone();
        stored.deadline = op.deadline;
        stored.cancel_requested |= op.cancel_requested;
        stored.version += 1;
        stored.updated_at = Utc::now();
        Ok(stored.clone())
    }

    async fn request_cancel(&self, scope: &Scope, id: Uuid) -> Result<Operation, Error> {
        let mut state = self.state();
        state.operation(scope, id)?;
        let op = state.operations.get_mut(&id).ok_or_else(|| Error::not_found("operation", id))?;
        // Not a new version: the holder's next save keeps the flag (see `save_operation`).
        if !op.state.is_final() {
            op.cancel_requested = true;
        }
        Ok(op.clone())
    }

    async fn renew_operations(&self, holder: &str, lease: Duration) -> Result<u64, Error> {
        let mut state = self.state();
        let until = lease_end(Utc::now(), lease);
        let mut renewed = 0;
        for op in state.operations.values_mut() {
            if !op.state.is_final() && op.holder.as_deref() == Some(holder) {
                op.lease_until = Some(until);
                renewed += 1;
            }
        }
        Ok(renewed)
    }

    async fn claim_expired(&self, holder: &str, lease: Duration) -> Result<Vec<Operation>, Error> {
        let mut state = self.state();
        let now = Utc::now();
        let until = lease_end(now, lease);
        let mut claimed = Vec::new();
        for op in state.operations.values_mut() {
            if !op.state.is_final() && op.lease_until.is_none_or(|at| at < now) {
                op.holder = Some(holder.to_owned());
                op.lease_until = Some(until);
                op.version += 1;
                op.updated_at = now;
                claimed.push(op.clone());
            }
        }
        Ok(claimed)
    }
}
