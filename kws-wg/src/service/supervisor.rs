//! Keeping the interface process alive: start it, reconcile, reconcile on a timer, and when it
//! dies start it again and reconcile, so every peer comes back with no change on the clients.

use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, task::JoinHandle};

use crate::{VpnService, WireguardGo};

/// A running supervision task; stops it (and kills the interface process) when dropped.
#[derive(Debug)]
pub struct Supervisor {
    task: JoinHandle<()>,
    status: watch::Receiver<Status>,
}

/// What the supervisor reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Status {
    /// The interface process's id while it runs.
    pid: Option<u32>,
    /// How many times the interface was started and reconciled.
    starts: u64,
}

const RESTART_DELAY: Duration = Duration::from_millis(200);

/// A background task that reconciles on a timer; stops when dropped.
#[derive(Debug)]
pub struct ReconcileTimer {
    task: JoinHandle<()>,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl VpnService {
    /// Reconciles now and then every `every`, for a device whose process is run by someone
    /// else (the supervisor does this itself). Expired peers leave the interface on the next
    /// tick.
    pub fn reconcile_every(self: &Arc<Self>, every: Duration) -> ReconcileTimer {
        let service = Arc::clone(self);
        let task = tokio::spawn(async move {
            let mut timer = tokio::time::interval(every);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                timer.tick().await;
                if let Err(e) = service.reconcile().await {
                    let interface = &service.settings().interface;
                    tracing::error!(%interface, error = %e, "periodic reconcile failed");
                }
            }
        });
        ReconcileTimer { task }
    }

    /// Supervises `launcher`'s interface: starts it, reconciles, then reconciles every `every`
    /// (which also takes expired peers off) and restarts and reconciles it whenever it dies.
    pub fn supervise(self: &Arc<Self>, launcher: WireguardGo, every: Duration) -> Supervisor {
        let (tx, status) = watch::channel(Status::default());
        let service = Arc::clone(self);
        let task = tokio::spawn(async move { run(service, launcher, every, tx).await });
        Supervisor { task, status }
    }
}

async fn run(
    service: Arc<VpnService>,
    launcher: WireguardGo,
    every: Duration,
    tx: watch::Sender<Status>,
) {
    let interface = launcher.interface().clone();
    let mut starts = 0;
    loop {
        let mut running = match launcher.start().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(%interface, error = %e, "cannot start the interface; retrying");
                tokio::time::sleep(RESTART_DELAY * 5).await;
                continue;
            }
        };
        if let Err(e) = service.reconcile().await {
            tracing::error!(%interface, error = %e, "reconcile after start failed");
        }
        starts += 1;
        tx.send_replace(Status { pid: running.pid(), starts });
        let mut timer = tokio::time::interval(every);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        timer.tick().await;
        loop {
            tokio::select! {
                exit = running.wait() => {
                    tracing::warn!(%interface, ?exit, "interface process died; restarting");
                    break;
                }
                _ = timer.tick() => {
                    if let Err(e) = service.reconcile().await {
                        tracing::error!(%interface, error = %e, "periodic reconcile failed");
                    }
                }
            }
        }
        tx.send_replace(Status { pid: None, starts });
        tokio::time::sleep(RESTART_DELAY).await;
    }
}

impl Supervisor {
    /// The interface process's id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.status.borrow().pid
    }

    /// How many times the interface has been started and reconciled.
    pub fn starts(&self) -> u64 {
        self.status.borrow().starts
    }

    /// Waits until the interface has been started and reconciled at least `n` times; returns
    /// false when `timeout` passes first.
    pub async fn wait_starts(&mut self, n: u64, timeout: Duration) -> bool {
        let wait = self.status.wait_for(|s| s.starts >= n && s.pid.is_some());
        matches!(tokio::time::timeout(timeout, wait).await, Ok(Ok(_)))
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // Dropping the task drops the child, which is killed (kill_on_drop).
        self.task.abort();
    }
}
