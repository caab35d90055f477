//! `reconcile`: make the interface match the store by applying only the difference.

use std::collections::HashMap;

use chrono::Utc;

use crate::{
    Error, PublicKey, VpnService,
    device::{InterfaceConfig, PeerChange, PeerConfig},
};

/// What one `reconcile` changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Whether the interface's own key or port had to be set.
    pub configured: bool,
    /// Peers put on the interface.
    pub added: Vec<PublicKey>,
    /// Peers taken off it (unknown, revoked, disabled or expired).
    pub removed: Vec<PublicKey>,
    /// Peers whose allowed IPs, preshared key or keepalive were fixed.
    pub updated: Vec<PublicKey>,
}

impl ReconcileReport {
    /// True when the interface already matched the store.
    pub fn is_noop(&self) -> bool {
        !self.configured
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.updated.is_empty()
    }
}

/// Whether the interface's peer matches the wanted one (endpoint and counters are the
/// interface's own business; allowed IPs compare as a set).
fn matches(have: &PeerConfig, want: &PeerConfig) -> bool {
    // A peer has one or two prefixes: a quadratic subset test beats building sets.
    let subset = |a: &PeerConfig, b: &PeerConfig| {
        a.allowed_ips.iter().all(|x| b.allowed_ips.iter().any(|y| x.trunc() == y.trunc()))
    };
    have.preshared_key == want.preshared_key
        && have.keepalive == want.keepalive
        && subset(have, want)
        && subset(want, have)
}

impl VpnService {
    /// Reads the interface, compares it with the store and applies only the difference in one
    /// request: adds missing active peers, removes peers that are unknown, disabled or expired,
    /// and fixes allowed IPs, preshared keys and keepalives; sets the interface's key and port
    /// when they differ. Idempotent: a second call finds nothing to do and sends nothing.
    pub async fn reconcile(&self) -> Result<ReconcileReport, Error> {
        let now = Utc::now();
        let settings = self.settings();
        let mut want: HashMap<PublicKey, PeerConfig> = self
            .store()
            .list(&settings.interface)
            .await?
            .iter()
            .filter(|p| p.is_active(now))
            .map(|p| (p.public_key, p.device_config()))
            .collect();
        let state = self.device().get().await?;
        let mut report = ReconcileReport::default();
        if state.public_key != Some(settings.server_key.public_key())
            || state.listen_port != settings.listen_port
        {
            let config = InterfaceConfig {
                private_key: settings.server_key.clone(),
                listen_port: settings.listen_port,
            };
            self.device().configure(&config).await?;
            report.configured = true;
        }
        let mut changes = Vec::new();
        for have in state.peers {
            let key = have.config.public_key;
            match want.remove(&key) {
                None => {
                    report.removed.push(key);
                    changes.push(PeerChange::Remove(key));
                }
                Some(wanted) if !matches(&have.config, &wanted) => {
                    report.updated.push(key);
                    changes.push(PeerChange::Upsert(wanted));
                }
                Some(_) => {}
            }
        }
        let mut missing: Vec<PeerConfig> = want.into_values().collect();
        missing.sort_by_key(|c| c.public_key);
        for wanted in missing {
            report.added.push(wanted.public_key);
            changes.push(PeerChange::Upsert(wanted));
        }
        if !changes.is_empty() {
            self.device().apply(&changes).await?;
        }
        if !report.is_noop() {
            tracing::info!(
                interface = %settings.interface,
                configured = report.configured,
                added = report.added.len(),
                removed = report.removed.len(),
                updated = report.updated.len(),
                "reconciled"
            );
        }
        Ok(report)
    }
}
