//! What one reconcile pass changed.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What one pass changed, by area; empty lists and `false` where nothing had to change.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReconcileReport {
    /// When the pass started.
    pub at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub took_ms: f64,
    /// Devices past their expiry, revoked (`tenant/name`).
    pub devices_expired: Vec<String>,
    /// Peers in the peer store without a device record, purged (`tenant/name`).
    pub peers_removed: Vec<String>,
    /// Whether the interface's own key or port was set.
    pub interface_configured: bool,
    /// Peers put on the interface (public keys).
    pub interface_added: Vec<String>,
    /// Peers taken off the interface.
    pub interface_removed: Vec<String>,
    /// Peers whose settings on the interface were fixed.
    pub interface_updated: Vec<String>,
    /// Instances made again because their container was gone (`tenant/name`).
    pub instances_recreated: Vec<String>,
    /// Instances started because they should run.
    pub instances_started: Vec<String>,
    /// Instances stopped because they should not run.
    pub instances_stopped: Vec<String>,
    /// kws-labelled containers without a record, removed (`tenant/name`).
    pub orphans_removed: Vec<String>,
    /// Whether kws's firewall table was replaced.
    pub firewall_replaced: bool,
    /// Bridges the firewall created or fixed.
    pub firewall_links_changed: usize,
    /// Routes published (hosts).
    pub routes_published: Vec<String>,
    /// Routes taken off (hosts).
    pub routes_removed: Vec<String>,
    /// The serial of a certificate renewed in this pass.
    pub certificate_renewed: Option<String>,
    /// What failed (the other areas still ran).
    pub errors: Vec<String>,
}

impl ReconcileReport {
    /// Whether the pass found everything as the stores want it.
    pub fn changed_nothing(&self) -> bool {
        self.devices_expired.is_empty()
            && self.peers_removed.is_empty()
            && !self.interface_configured
            && self.interface_added.is_empty()
            && self.interface_removed.is_empty()
            && self.interface_updated.is_empty()
            && self.instances_recreated.is_empty()
            && self.instances_started.is_empty()
            && self.instances_stopped.is_empty()
            && self.orphans_removed.is_empty()
            && !self.firewall_replaced
            && self.firewall_links_changed == 0
            && self.routes_published.is_empty()
            && self.routes_removed.is_empty()
            && self.certificate_renewed.is_none()
            && self.errors.is_empty()
    }
}
