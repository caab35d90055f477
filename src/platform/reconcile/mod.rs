//! Reconcile: the stores are the truth. One pass makes the interface peers, the firewall
//! table, the proxy routes, the certificate and the runtime's containers match them: it adopts
//! what carries kws's labels and has a record, removes kws-labelled orphans, touches nothing
//! else, and reports each change it made.

mod engine;
mod report;

pub use report::ReconcileReport;

use std::{collections::HashMap, time::Instant};

use chrono::Utc;
use kws_proxy::Route;

use crate::platform::{
    Error, EventBody, Platform, Scope,
    flows::proxy_error,
    model::{DeviceSpec, DeviceStatus},
    store::PlatformStoreExt,
};

impl Platform {
    /// One reconcile pass. Each part runs even when another failed; the report lists what each
    /// changed and every error met. Fails only when the store cannot be read.
    pub async fn reconcile(&self) -> Result<ReconcileReport, Error> {
        let started = Instant::now();
        let mut report = ReconcileReport { at: Utc::now(), ..ReconcileReport::default() };
        let note = |area: &str, result: Result<(), Error>, report: &mut ReconcileReport| {
            if let Err(e) = result {
                tracing::warn!(area, error = %e, "reconcile");
                report.errors.push(format!("{area}: {e}"));
            }
        };
        let result = self.reconcile_devices(&mut report).await;
        note("vpn", result, &mut report);
        if self.runtime().is_ok() {
            let result = self.reconcile_instances(&mut report).await;
            note("instances", result, &mut report);
        }
        let result = self.reconcile_firewall(&mut report).await;
        note("firewall", result, &mut report);
        let result = self.reconcile_routes(&mut report).await;
        note("routes", result, &mut report);
        let result = self.reconcile_certificate(&mut report).await;
        note("certificate", result, &mut report);
        report.took_ms = started.elapsed().as_secs_f64() * 1000.0;
        if !report.changed_nothing() {
            tracing::info!(?report, "reconciled");
        }
        self.set_last_reconcile(report.clone());
        Ok(report)
    }

    /// Devices: expired ones revoked, peers without a record (a crash's leftovers) purged,
    /// the interface made to match the peer store, and each record's handshake observed.
    async fn reconcile_devices(&self, report: &mut ReconcileReport) -> Result<(), Error> {
        let scope = Scope::Operator;
        let store = self.store();
        let vpn = self.vpn();
        let now = Utc::now();
        let devices = store.list_all::<DeviceSpec>(&scope, None).await?;
        let mut recorded = HashMap::new();
        for device in &devices {
            if device.spec.expires_at.is_some_and(|at| at <= now) {
                self.purge_device_everywhere(&device.meta.tenant, device).await?;
                report.devices_expired.push(format!("{}/{}", device.meta.tenant, device.meta.name));
            } else {
                recorded.insert((device.meta.tenant.clone(), device.meta.name.clone()), device);
            }
        }
        let vpn_error = |e| Error::backend("vpn", e);
        let peers = vpn.store().list(&vpn.settings().interface).await.map_err(vpn_error)?;
        for peer in peers {
            if !recorded.contains_key(&(peer.owner.clone(), peer.name.clone())) {
                vpn.purge_device(&peer.owner, &peer.name, Some(peer.public_key))
                    .await
                    .map_err(vpn_error)?;
                report.peers_removed.push(format!("{}/{}", peer.owner, peer.name));
            }
        }
        let interface = vpn.reconcile().await.map_err(vpn_error)?;
        report.interface_configured = interface.configured;
        report.interface_added = interface.added.iter().map(|k| k.to_base64()).collect();
        report.interface_removed = interface.removed.iter().map(|k| k.to_base64()).collect();
        report.interface_updated = interface.updated.iter().map(|k| k.to_base64()).collect();
        // Handshakes and counters, recorded when they changed.
        for view in vpn.list().await.map_err(vpn_error)? {
            let key = (view.peer.owner.clone(), view.peer.name.clone());
            let Some(device) = recorded.get(&key) else { continue };
            let status = DeviceStatus {
                on_interface: view.on_interface,
                last_handshake: view.last_handshake.map(chrono::DateTime::<Utc>::from),
                rx_bytes: view.rx_bytes,
                tx_bytes: view.tx_bytes,
            };
            if device.status.value.as_ref() == Some(&status) {
                continue;
            }
            let (tenant, name) = (&device.meta.tenant, device.meta.name.as_str());
            store.observe::<DeviceSpec>(&scope, tenant, name, Some(&status), now).await?;
            let body = EventBody::Device {
                name: name.to_owned(),
                last_handshake: status.last_handshake,
                rx_bytes: status.rx_bytes,
                tx_bytes: status.tx_bytes,
            };
            self.events().publish(tenant, body);
        }
        Ok(())
    }

    async fn reconcile_firewall(&self, report: &mut ReconcileReport) -> Result<(), Error> {
        let applied = self.apply_firewall().await?;
        report.firewall_replaced = applied.netfilter_replaced;
        report.firewall_links_changed = applied.links_changed;
        Ok(())
    }

    /// Routes: what the stores want published (missing or changed ones, in one batch), what
    /// they do not want taken off.
    async fn reconcile_routes(&self, report: &mut ReconcileReport) -> Result<(), Error> {
        let desired = self.desired_routes().await?;
        let proxy = self.proxy();
        let current = proxy.routes().await.map_err(proxy_error)?;
        let have: HashMap<_, &Route> = current.iter().map(|r| (r.host(), r)).collect();
        let want: HashMap<_, &Route> = desired.iter().map(|r| (r.host(), r)).collect();
        let publish: Vec<Route> = desired
            .iter()
            .filter(|r| have.get(r.host()).is_none_or(|h| *h != *r))
            .cloned()
            .collect();
        for route in current.iter().filter(|r| !want.contains_key(r.host())) {
            proxy.unpublish(route.host()).await.map_err(proxy_error)?;
            report.routes_removed.push(route.host().to_string());
        }
        if !publish.is_empty() {
            report.routes_published = publish.iter().map(|r| r.host().to_string()).collect();
            proxy.publish_all(publish).await.map_err(proxy_error)?;
        }
        Ok(())
    }

    #[allow(clippy::unused_async)]
    async fn reconcile_certificate(&self, report: &mut ReconcileReport) -> Result<(), Error> {
        #[cfg(feature = "acme")]
        if let Some(issuer) = self.certs() {
            let outcome = issuer
                .renew_if_due(std::time::SystemTime::now())
                .await
                .map_err(|e| Error::backend("certificate", e))?;
            if let kws_proxy::tls::RenewOutcome::Renewed(cert) = outcome {
                report.certificate_renewed = Some(cert.serial);
            }
        }
        let _ = report;
        Ok(())
    }
}
