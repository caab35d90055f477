//! The plan backend: renders the `ip`, `sysctl`, `nft` and `iptables` commands that would
//! bring the host to a state, and changes nothing.

use std::sync::Mutex;

use async_trait::async_trait;

pub use crate::render::{
    nft::render_batch,
    script::{SYSCTL_IPV4_FORWARD, SYSCTL_IPV6_FORWARD, render_apply, render_teardown},
};
use crate::{ApplyReport, Error, HostNetState, HostNetwork, TeardownErrors};

/// A [`HostNetwork`] that only writes scripts. It remembers the last applied state (so
/// `current` and idempotency behave like a real host) and the scripts it rendered.
#[derive(Debug, Default)]
pub struct PlanHostNetwork {
    inner: Mutex<Recorded>,
}

#[derive(Debug, Default)]
struct Recorded {
    state: Option<HostNetState>,
    scripts: Vec<String>,
}

impl PlanHostNetwork {
    /// An empty plan: nothing applied yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every script rendered so far, oldest first (apply and teardown scripts).
    pub fn scripts(&self) -> Vec<String> {
        self.lock().scripts.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        // A poisoned lock only means another caller panicked mid-push; the data stays usable.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl HostNetwork for PlanHostNetwork {
    async fn apply(&self, desired: &HostNetState) -> Result<ApplyReport, Error> {
        let mut rec = self.lock();
        let previous = rec.state.clone().unwrap_or_default();
        if rec.state.as_ref() == Some(desired) {
            return Ok(ApplyReport::default());
        }
        let report = ApplyReport {
            links_changed: desired
                .bridges
                .iter()
                .filter(|b| !previous.bridges.iter().any(|p| p.name == b.name))
                .count(),
            addresses_changed: desired.bridges.iter().map(|b| b.addresses.len()).sum(),
            sysctls_written: usize::from(previous.forwarding.ipv4 != desired.forwarding.ipv4)
                + usize::from(previous.forwarding.ipv6 != desired.forwarding.ipv6),
            netfilter_replaced: true,
            foreign_chain_rules_added: 0,
        };
        rec.scripts.push(render_apply(desired));
        rec.state = Some(desired.clone());
        Ok(report)
    }

    async fn current(&self) -> Result<HostNetState, Error> {
        Ok(self.lock().state.clone().unwrap_or_default())
    }

    async fn teardown(&self) -> Result<(), TeardownErrors> {
        let mut rec = self.lock();
        let state = rec.state.take().unwrap_or_default();
        rec.scripts.push(render_teardown(&state));
        // The plan keeps the forwarding switches, as a real teardown does.
        let spec = crate::HostNetSpec { forwarding: state.forwarding, ..Default::default() };
        rec.state = crate::HostNetState::new(spec).ok();
        Ok(())
    }
}
