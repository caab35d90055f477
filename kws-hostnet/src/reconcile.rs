//! The reconcile loop: re-applies the desired state on a timer, so the host comes back by
//! itself when something removed kws's work (for example `nft flush ruleset`, or a Docker
//! restart that recreated its chains).

use std::{future::Future, time::Duration};

use crate::{ApplyReport, Error, HostNetState, HostNetwork};

/// What a reconcile loop did before it stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconcileStats {
    /// Applies made (one per tick, the first one immediately).
    pub passes: u64,
    /// Passes that found the host drifted and changed something.
    pub repairs: u64,
    /// Passes that failed (logged; the loop keeps going).
    pub failures: u64,
}

/// Applies `desired` now and then every `every`, until `shutdown` completes. `observe` sees the
/// result of every pass (for a log line or a metric); pass `|_| {}` when not needed.
///
/// # Contract
/// Relies on `apply` being idempotent and cheap when nothing changed (one table listing and one
/// netlink dump for the Linux backend), so a short period costs little. An error is logged and
/// counted; the next tick tries again.
pub async fn reconcile_loop(
    network: &dyn HostNetwork,
    desired: &HostNetState,
    every: Duration,
    shutdown: impl Future<Output = ()>,
    mut observe: impl FnMut(&Result<ApplyReport, Error>),
) -> ReconcileStats {
    let mut stats = ReconcileStats::default();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return stats,
            _ = ticks.tick() => {}
        }
        stats.passes += 1;
        let result = network.apply(desired).await;
        observe(&result);
        match result {
            Ok(report) if report.changed_nothing() => {}
            Ok(report) => {
                stats.repairs += 1;
                tracing::info!(?report, "kws-hostnet: host drifted, state re-applied");
            }
            Err(error) => {
                stats.failures += 1;
                tracing::warn!(%error, "kws-hostnet: reconcile pass failed");
            }
        }
    }
}
