//! Finishing removals that an interrupted or failed operation left: objects marked `deleting`
//! long enough ago that their own operation is no longer running them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::ReconcileReport;
use crate::platform::{
    Error, Platform, Scope,
    model::{AppSpec, DatabaseSpec, DeviceSpec, InstanceSpec},
    ops::to_chrono,
    store::{Meta, OpState, PlatformStoreExt},
};

impl Platform {
    pub(super) async fn finish_removals(&self, report: &mut ReconcileReport) -> Result<(), Error> {
        let scope = Scope::Operator;
        let store = self.store();
        for app in store.list_all::<AppSpec>(&scope, None).await? {
            if self.stale_mark(&app.meta) {
                self.unpublish_app(&scope, &app.meta.tenant, app.meta.name.as_str()).await?;
                report.removals_finished.push(label("app", &app.meta));
            }
        }
        if self.runtime().is_ok() {
            for instance in store.list_all::<InstanceSpec>(&scope, None).await? {
                if self.stale_mark(&instance.meta) {
                    self.remove_instance(
                        &scope,
                        &instance.meta.tenant,
                        instance.meta.name.as_str(),
                    )
                    .await?;
                    report.removals_finished.push(label("instance", &instance.meta));
                }
            }
        }
        for device in store.list_all::<DeviceSpec>(&scope, None).await? {
            if self.stale_mark(&device.meta) {
                self.revoke_device(&scope, &device.meta.tenant, device.meta.name.as_str()).await?;
                report.removals_finished.push(label("device", &device.meta));
            }
        }
        if self.databases().is_ok() {
            for db in store.list_all::<DatabaseSpec>(&scope, None).await? {
                if self.stale_mark(&db.meta) {
                    self.drop_database(&scope, &db.meta.tenant, db.meta.name.as_str()).await?;
                    report.removals_finished.push(label("database", &db.meta));
                }
            }
        }
        Ok(())
    }

    /// Marked for removal longer ago than an operation's lease: its own operation stopped.
    fn stale_mark(&self, meta: &Meta) -> bool {
        let lease = to_chrono(self.settings().operation_lease);
        meta.deleting.is_some_and(|at| at + lease < Utc::now())
    }

    /// Whether the operation that made an object may still be running it: it is running, or
    /// the object is younger than a lease.
    pub(crate) async fn in_flight(
        &self,
        origin: Option<Uuid>,
        created: DateTime<Utc>,
    ) -> Result<bool, Error> {
        if created + to_chrono(self.settings().operation_lease) > Utc::now() {
            return Ok(true);
        }
        let Some(origin) = origin else { return Ok(false) };
        match self.store().get_operation(&Scope::Operator, origin).await {
            Ok(op) => Ok(matches!(op.state, OpState::Running | OpState::Pending)),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn label(kind: &str, meta: &Meta) -> String {
    format!("{kind} {}/{}", meta.tenant, meta.name)
}
