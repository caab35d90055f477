//! What an instance's engine tells of it: its output, and its use of resources.

use std::sync::Arc;

use kws_core::{InstanceId, OwnerId};
use kws_runtime::{InstanceKey, InstanceStats, LogOptions, LogStream, Runtime};

use super::parse_name;
use crate::platform::{
    Error, Platform, Role, Scope, model::InstanceSpec, store::PlatformStoreExt as _,
};

impl Platform {
    /// The output of the tenant's instance `name` (viewer role): the past lines (the last
    /// `tail` when set), then, with `follow`, new ones as they are written until the
    /// instance stops. Another tenant's instance is `NotFound`; no engine, `Unavailable`.
    pub async fn instance_logs(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
        options: LogOptions,
    ) -> Result<LogStream, Error> {
        let (runtime, key) = self.engine_of(scope, tenant, name).await?;
        runtime.logs(&key, options).await.map_err(|e| no_container(&key, "logs", e))
    }

    /// A sample of the resources the tenant's instance `name` uses now (viewer role): CPU,
    /// memory against its limit, network bytes, processes. Another tenant's instance is
    /// `NotFound`; no engine, or no container at the moment, `Unavailable`.
    pub async fn instance_stats(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
    ) -> Result<InstanceStats, Error> {
        let (runtime, key) = self.engine_of(scope, tenant, name).await?;
        runtime.stats(&key).await.map_err(|e| no_container(&key, "stats", e))
    }

    /// The engine and the container key of a recorded instance the scope may view.
    async fn engine_of(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
    ) -> Result<(&Arc<dyn Runtime>, InstanceKey), Error> {
        scope.require(tenant, Role::Viewer)?;
        let name = parse_name("name", name)?;
        let runtime = self.runtime()?;
        self.store().get::<InstanceSpec>(scope, tenant, name.as_str()).await?;
        Ok((runtime, InstanceKey::new(tenant.clone(), InstanceId::from(name))))
    }
}

/// An engine error of `feature`: a missing container is `Unavailable` (the record stays and
/// reconcile makes the container again), anything else a backend error.
fn no_container(key: &InstanceKey, feature: &'static str, e: kws_runtime::Error) -> Error {
    match e {
        kws_runtime::Error::NotFound { .. } => Error::Unavailable {
            feature,
            reason: format!(
                "instance {} has no container now (reconcile makes it again)",
                key.name
            ),
        },
        e => Error::backend("runtime", e),
    }
}
