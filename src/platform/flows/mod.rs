//! The user-level flows. Each runs as an operation (see `ops`): its steps are recorded, and
//! when a later step fails the finished ones are undone in reverse order.
//!
//! | flow | steps | when interrupted |
//! |---|---|---|
//! | add a device | record, lease, peer, interface, firewall, config | undone |
//! | revoke a device | vpn, firewall, record | finished |
//! | launch an instance | record, container, firewall, start, route, observe | undone |
//! | start, stop, restart, redeploy | desired, engine, observe | finished |
//! | remove an instance | apps, route, container, network, record | finished |
//! | publish an app | record, route, observe | undone |
//! | unpublish an app | route, record | finished |
//! | create a database | record, database | undone |
//! | rotate, drop a database | database, record | finished |
//! | delete a tenant | apps, instances, devices, databases, jobs, firewall, tenant | finished |
//! | submit a job with an idempotency key (without one it is no operation) | record | undone |

mod app;
mod database;
mod device;
mod exec;
mod instance;
mod logs;
mod tenant;

pub use app::PublishApp;
pub use database::DatabaseCreated;
pub use device::{AddDevice, DeviceAdded};
pub use exec::{CodeRunner, SubmitJob};
pub use instance::{LaunchInstance, Redeploy};
pub(crate) use instance::{missing, proxy_error, runtime_error, status_of};

use kws_core::{DnsLabel, Hostname};

use crate::platform::{
    Error, Platform,
    ops::{Recovery, Run},
    store::{OpState, Operation},
};

/// The recovery of every operation kind.
pub(crate) fn recovery_of(kind: &str) -> Option<Recovery> {
    Some(match kind {
        device::ADD => Recovery::Compensate(device::undo_add),
        device::REVOKE => Recovery::Finish(device::rerun_revoke),
        instance::LAUNCH => Recovery::Compensate(instance::undo_launch),
        instance::ACTION => Recovery::Finish(instance::rerun_action),
        instance::REMOVE => Recovery::Finish(instance::rerun_remove),
        app::PUBLISH => Recovery::Compensate(app::undo_publish),
        app::UNPUBLISH => Recovery::Finish(app::rerun_unpublish),
        database::CREATE => Recovery::Compensate(database::undo_create),
        database::CHANGE => Recovery::Finish(database::rerun_change),
        tenant::DELETE => Recovery::Finish(tenant::rerun_delete),
        exec::SUBMIT => Recovery::Compensate(exec::undo_submit),
        _ => return None,
    })
}

/// Parses a name a user gave (`field` says which), as a DNS label.
pub(crate) fn parse_name(field: &'static str, raw: &str) -> Result<DnsLabel, Error> {
    DnsLabel::parse(raw).map_err(|e| Error::invalid(field, e))
}

/// The platform-wide key of a hostname label: instances and apps share `<label>.<domain>`.
pub(crate) fn hostname_key(label: &DnsLabel) -> String {
    format!("hostname:{label}")
}

impl Platform {
    /// A name that becomes `<name>.<domain>`: a DNS label, not reserved.
    pub(crate) fn public_name(&self, field: &'static str, raw: &str) -> Result<DnsLabel, Error> {
        let label = parse_name(field, raw)?;
        if self.settings().reserved_names.contains(&label) {
            return Err(Error::invalid(field, format!("{label} is reserved by the platform")));
        }
        Ok(label)
    }

    /// `<label>.<domain>`.
    pub(crate) fn hostname(&self, label: &DnsLabel) -> Result<Hostname, Error> {
        Hostname::new(label.clone(), &self.settings().domain).map_err(|e| Error::invalid("name", e))
    }
}

/// The error an operation ended with, for a caller who retried it with the same key.
pub(crate) fn ended_error(op: &Operation) -> Error {
    let reason = op.error.clone().unwrap_or_else(|| "no reason recorded".to_owned());
    match op.state {
        OpState::Running | OpState::Pending => {
            Error::Busy { retry_after: std::time::Duration::from_secs(1) }
        }
        _ => Error::backend(
            "operation",
            format!("operation {} {}: {reason}", op.id, op.state.as_str()),
        ),
    }
}

/// Runs a flow that undoes itself on failure: `body` on success, compensation with `undo`
/// on failure. Returns what `body` returned.
pub(crate) async fn undoable<T>(
    run: &Run,
    undo: crate::platform::ops::run::Undo,
    body: impl std::future::Future<Output = Result<(T, serde_json::Value), Error>>,
) -> Result<T, Error> {
    match body.await {
        Ok((out, result)) => {
            run.succeed(result).await;
            Ok(out)
        }
        Err(e) => {
            run.compensate(&e, undo).await;
            Err(e)
        }
    }
}

/// Runs a flow that finishes rather than undoes: a failure ends it `failed` (reconcile removes
/// what it left).
pub(crate) async fn finishing<T>(
    run: &Run,
    body: impl std::future::Future<Output = Result<(T, serde_json::Value), Error>>,
) -> Result<T, Error> {
    match body.await {
        Ok((out, result)) => {
            run.succeed(result).await;
            Ok(out)
        }
        Err(e) => {
            run.fail(&e).await;
            Err(e)
        }
    }
}
impl Platform {
    /// Deletes `S`'s object `name` of `op`'s tenant when `op` made it (the undo of a `record`
    /// step); an object another operation made, or none, is left alone.
    pub(crate) async fn remove_own<S: crate::platform::store::Resource>(
        &self,
        op: &Operation,
        name: &str,
    ) -> Result<(), Error> {
        use crate::platform::store::PlatformStoreExt;
        let scope = crate::platform::Scope::Operator;
        let Some(object) = self.store().find::<S>(&scope, &op.tenant, name).await? else {
            return Ok(());
        };
        if object.origin != Some(op.id) {
            return Ok(());
        }
        let deleted = self
            .store()
            .delete_object(&scope, S::KIND, &op.tenant, name, Some(object.meta.version))
            .await;
        match deleted {
            Ok(record) => {
                self.publish_object(&op.tenant, &record.meta, "deleted");
                Ok(())
            }
            Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Tells subscribers an object changed.
    pub(crate) fn publish_object(
        &self,
        tenant: &kws_core::OwnerId,
        meta: &crate::platform::store::Meta,
        change: &'static str,
    ) {
        let body = crate::platform::EventBody::Object {
            kind: meta.kind,
            name: meta.name.to_string(),
            change,
        };
        self.events().publish(tenant, body);
    }
}
