//! Typed access to tenant objects: each kind's spec type names its status type, and the
//! [`PlatformStoreExt`] methods turn records into [`Object`]s and back.

use chrono::{DateTime, Utc};
use kws_core::{DnsLabel, OwnerId};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

use super::{Claims, Kind, Meta, NewObject, ObjectRecord, Page, PlatformStore};
use crate::platform::{Error, Scope};

/// A spec type of one kind of tenant object.
pub trait Resource: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// Its kind.
    const KIND: Kind;
    /// What observers record of it.
    type Status: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
}

/// What an observer saw, and when; `value` is `None` while nobody could look (unknown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Observed<T> {
    /// The observation, if any.
    pub value: Option<T>,
    /// When it was made.
    pub at: Option<DateTime<Utc>>,
}

impl<T> Default for Observed<T> {
    fn default() -> Self {
        Self { value: None, at: None }
    }
}

/// A typed tenant object.
#[derive(Debug, Clone, PartialEq)]
pub struct Object<S: Resource> {
    /// Who and what it is.
    pub meta: Meta,
    /// What it claims of the quota.
    pub claims: Claims,
    /// The operation that made it.
    pub origin: Option<Uuid>,
    /// The desired state.
    pub spec: S,
    /// The observed state.
    pub status: Observed<S::Status>,
}

impl<S: Resource> Object<S> {
    /// Reads a record of kind `S::KIND`.
    pub fn from_record(record: ObjectRecord) -> Result<Self, Error> {
        if record.meta.kind != S::KIND {
            return Err(corrupt(&record.meta, "of another kind"));
        }
        let spec = S::deserialize(&*record.spec).map_err(|e| corrupt(&record.meta, e))?;
        let value = match &*record.status {
            serde_json::Value::Null => None,
            status => Some(S::Status::deserialize(status).map_err(|e| corrupt(&record.meta, e))?),
        };
        Ok(Self {
            meta: record.meta,
            claims: record.claims,
            origin: record.origin,
            spec,
            status: Observed { value, at: record.observed_at },
        })
    }

    /// The tenant.
    pub fn tenant(&self) -> &OwnerId {
        &self.meta.tenant
    }

    /// The name.
    pub fn name(&self) -> &DnsLabel {
        &self.meta.name
    }
}

fn corrupt(meta: &Meta, why: impl std::fmt::Display) -> Error {
    let what = format!("{} {}/{}", meta.kind.as_str(), meta.tenant, meta.name);
    Error::backend("store", format!("{what} does not read back: {why}"))
}

fn to_json(value: &impl Serialize) -> Result<serde_json::Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::backend("store", e))
}

/// Typed conveniences over every [`PlatformStore`].
#[async_trait::async_trait]
pub trait PlatformStoreExt: PlatformStore {
    /// Creates an object of `S`'s kind, made by operation `origin`.
    #[allow(clippy::too_many_arguments)]
    async fn create<S: Resource>(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &DnsLabel,
        unique: Option<String>,
        claims: Claims,
        spec: &S,
        origin: Option<Uuid>,
    ) -> Result<Object<S>, Error> {
        let new = NewObject {
            kind: S::KIND,
            tenant: tenant.clone(),
            name: name.clone(),
            unique,
            claims,
            spec: to_json(spec)?,
            origin,
        };
        Object::from_record(self.create_object(scope, new).await?)
    }

    /// An object of `S`'s kind.
    async fn get<S: Resource>(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
    ) -> Result<Object<S>, Error> {
        Object::from_record(self.get_object(scope, S::KIND, tenant, name).await?)
    }

    /// An object of `S`'s kind, or `None`.
    async fn find<S: Resource>(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
    ) -> Result<Option<Object<S>>, Error> {
        match self.get::<S>(scope, tenant, name).await {
            Ok(object) => Ok(Some(object)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of objects of `S`'s kind.
    async fn list<S: Resource>(
        &self,
        scope: &Scope,
        tenant: Option<&OwnerId>,
        page: &Page,
    ) -> Result<Vec<Object<S>>, Error> {
        let records = self.list_objects(scope, S::KIND, tenant, page).await?;
        records.into_iter().map(Object::from_record).collect()
    }

    /// Every object of `S`'s kind the scope sees, page after page.
    async fn list_all<S: Resource>(
        &self,
        scope: &Scope,
        tenant: Option<&OwnerId>,
    ) -> Result<Vec<Object<S>>, Error> {
        let mut all = Vec::new();
        let mut page = Page::first(Page::MAX);
        loop {
            let batch = self.list::<S>(scope, tenant, &page).await?;
            let full = batch.len() == Page::MAX;
            if let Some(last) = batch.last() {
                page.after = Some((last.meta.tenant.clone(), last.meta.name.to_string()));
            }
            all.extend(batch);
            if !full {
                return Ok(all);
            }
        }
    }

    /// Writes `object`'s spec and claims at the version it was read with.
    async fn update<S: Resource>(
        &self,
        scope: &Scope,
        object: &Object<S>,
    ) -> Result<Object<S>, Error> {
        let m = &object.meta;
        let spec = to_json(&object.spec)?;
        let record = self
            .update_spec(scope, S::KIND, &m.tenant, m.name.as_str(), m.version, spec, object.claims)
            .await?;
        Object::from_record(record)
    }

    /// Records an observation of `S`'s object (`None`: could not be observed: unknown).
    async fn observe<S: Resource>(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
        status: Option<&S::Status>,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let status = match status {
            Some(status) => to_json(status)?,
            None => serde_json::Value::Null,
        };
        self.update_status(scope, S::KIND, tenant, name, status, at).await
    }

    /// Marks `S`'s object as being removed (see [`Meta::deleting`]).
    async fn mark_removing<S: Resource>(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
    ) -> Result<(), Error> {
        match self.mark_deleting(scope, S::KIND, tenant, name).await {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes `S`'s object, whatever its version; `Ok(None)` when there was none.
    async fn remove<S: Resource>(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
    ) -> Result<Option<Object<S>>, Error> {
        match self.delete_object(scope, S::KIND, tenant, name, None).await {
            Ok(record) => Object::from_record(record).map(Some),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl<T: PlatformStore + ?Sized> PlatformStoreExt for T {}
