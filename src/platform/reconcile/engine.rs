//! Reconcile of the runtime's instances with their records.

use std::collections::HashMap;

use chrono::Utc;
use kws_core::InstanceId;
use kws_runtime::{InstanceKey, InstanceState, VolumePolicy};

use super::ReconcileReport;
use crate::platform::{
    Error, Platform, Scope,
    flows::{runtime_error, status_of},
    model::{Desired, InstanceSpec},
    store::{Object, OpState, PlatformStoreExt},
};

impl Platform {
    /// Containers without a record go (kws-labelled ones only: the runtime sees no other);
    /// records whose container is gone get it again (workspace kept, so files survive); an
    /// instance that should run is started, one that should not is stopped; every record's
    /// observed status is refreshed where it changed. Records of a launch still running are
    /// left to it.
    pub(crate) async fn reconcile_instances(
        &self,
        report: &mut ReconcileReport,
    ) -> Result<(), Error> {
        let runtime = self.runtime()?;
        let scope = Scope::Operator;
        let store = self.store();
        let records = store.list_all::<InstanceSpec>(&scope, None).await?;
        let engine = runtime.list_all().await.map_err(runtime_error)?;
        let mut live: HashMap<InstanceKey, kws_runtime::InstanceInfo> =
            engine.into_iter().map(|i| (i.key.clone(), i)).collect();
        for record in &records {
            let key = key_of(record);
            let info = live.remove(&key);
            if self.launch_in_flight(record).await? {
                continue;
            }
            let label = format!("{}/{}", record.meta.tenant, record.meta.name);
            let info = match info {
                Some(info) => info,
                None if record.spec.address.is_some() => {
                    self.recreate(record).await?;
                    report.instances_recreated.push(label.clone());
                    runtime.inspect(&key).await.map_err(runtime_error)?
                }
                None => continue,
            };
            let running = matches!(info.state, InstanceState::Running | InstanceState::Restarting);
            let info = match (record.spec.desired, running) {
                (Desired::Running, false) => {
                    runtime.start(&key).await.map_err(runtime_error)?;
                    report.instances_started.push(label);
                    runtime.inspect(&key).await.map_err(runtime_error)?
                }
                (Desired::Stopped, true) => {
                    runtime.stop(&key, None).await.map_err(runtime_error)?;
                    report.instances_stopped.push(label);
                    runtime.inspect(&key).await.map_err(runtime_error)?
                }
                _ => info,
            };
            let status = status_of(&info);
            if record.status.value.as_ref() != Some(&status) {
                let (tenant, name) = (&record.meta.tenant, &record.meta.name);
                self.record_instance_status(tenant, name, Some(&status), Utc::now()).await?;
            }
        }
        // What is left in the engine has no record: a crash's leftover.
        for (key, _) in live {
            runtime.purge(&key, VolumePolicy::Delete).await.map_err(runtime_error)?;
            report.orphans_removed.push(key.to_string());
        }
        Ok(())
    }

    /// Whether the operation that made the record is still running (the launch owns it).
    async fn launch_in_flight(&self, record: &Object<InstanceSpec>) -> Result<bool, Error> {
        let Some(origin) = record.origin else { return Ok(false) };
        if record.status.value.is_some() {
            return Ok(false);
        }
        match self.store().get_operation(&Scope::Operator, origin).await {
            Ok(op) => Ok(op.state == OpState::Running || op.state == OpState::Pending),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Makes a record's container again, with its workspace (kept by the runtime's volume),
    /// and records its address and the state it observed.
    async fn recreate(&self, record: &Object<InstanceSpec>) -> Result<(), Error> {
        let runtime = self.runtime()?;
        let (tenant, name) = (&record.meta.tenant, &record.meta.name);
        let key = key_of(record);
        // A half of it may be left (a lease, a redeploy's container): the workspace stays.
        runtime.purge(&key, VolumePolicy::Keep).await.map_err(runtime_error)?;
        let spec = self.runtime_spec(tenant, name, &record.spec)?;
        let info = runtime.create(spec).await.map_err(runtime_error)?;
        self.apply_firewall().await?;
        let store = self.store();
        let mut fresh = store.get::<InstanceSpec>(&Scope::Operator, tenant, name.as_str()).await?;
        if fresh.spec.address != Some(info.address) || fresh.spec.ide_port != Some(info.ide_port) {
            fresh.spec.address = Some(info.address);
            fresh.spec.ide_port = Some(info.ide_port);
            store.update(&Scope::Operator, &fresh).await?;
        }
        Ok(())
    }
}

fn key_of(record: &Object<InstanceSpec>) -> InstanceKey {
    InstanceKey::new(record.meta.tenant.clone(), InstanceId::from(record.meta.name.clone()))
}
