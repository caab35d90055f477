//! An instance's output, as the engine keeps it.

use kws_core::{InstanceId, OwnerId};
use kws_runtime::{InstanceKey, LogOptions, LogStream};

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
        scope.require(tenant, Role::Viewer)?;
        let name = parse_name("name", name)?;
        let runtime = self.runtime()?;
        self.store().get::<InstanceSpec>(scope, tenant, name.as_str()).await?;
        let key = InstanceKey::new(tenant.clone(), InstanceId::from(name.clone()));
        match runtime.logs(&key, options).await {
            Ok(stream) => Ok(stream),
            Err(kws_runtime::Error::NotFound { .. }) => Err(Error::Unavailable {
                feature: "logs",
                reason: format!("instance {name} has no container now (reconcile makes it again)"),
            }),
            Err(e) => Err(Error::backend("runtime", e)),
        }
    }
}
