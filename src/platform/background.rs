//! The Platform's background work: renewing this process's claim on its operations, reaping
//! other processes' interrupted ones, reconciling on a timer, and following the runtime's
//! event feed so observed status changes as the engine reports it (with a full pass each time
//! the feed is joined, so nothing missed while it was down is lost).

use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use kws_runtime::InstanceChange;
use tokio::task::JoinHandle;

use crate::platform::{
    Platform,
    flows::{missing, status_of},
};

/// The running background tasks; dropping it (or `stop`) ends them.
#[derive(Debug)]
pub struct Background {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Background {
    /// Ends every task and waits until they have stopped.
    pub async fn stop(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Platform {
    /// Starts the background work (see the module). Call once per process.
    pub fn spawn_background(&self) -> Background {
        let lease = self.settings().operation_lease;
        let mut tasks = Vec::new();
        let platform = self.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval((lease / 3).max(Duration::from_millis(100)));
            loop {
                tick.tick().await;
                if let Err(e) = platform.store().renew_operations(platform.holder(), lease).await {
                    tracing::warn!(error = %e, "operation leases not renewed");
                }
            }
        }));
        let platform = self.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval((lease / 2).max(Duration::from_millis(100)));
            loop {
                tick.tick().await;
                if let Err(e) = platform.reap().await {
                    tracing::warn!(error = %e, "reaper");
                }
            }
        }));
        let platform = self.clone();
        let every = self.settings().reconcile_every;
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = platform.reconcile().await {
                    tracing::warn!(error = %e, "reconcile");
                }
            }
        }));
        if self.runtime().is_ok() {
            let platform = self.clone();
            tasks.push(tokio::spawn(async move { platform.follow_runtime().await }));
        }
        Background { tasks }
    }

    /// Follows the runtime's events into observed status, rejoining when the feed breaks.
    async fn follow_runtime(&self) {
        loop {
            let Ok(runtime) = self.runtime() else { return };
            match runtime.watch().await {
                Ok(mut events) => {
                    // Whatever happened while the feed was down.
                    self.observe_all().await;
                    while let Some(event) = events.next().await {
                        let Ok(event) = event else { break };
                        let (tenant, name) = (&event.key.owner, event.key.name.label());
                        let seen = match event.change {
                            InstanceChange::Removed => Some(missing()),
                            _ => match runtime.inspect(&event.key).await {
                                Ok(info) => Some(status_of(&info)),
                                Err(kws_runtime::Error::NotFound { .. }) => Some(missing()),
                                Err(_) => None,
                            },
                        };
                        if let Some(status) = seen {
                            // Inspected now: an observation of now, whatever the event's time.
                            let at = Utc::now();
                            let recorded =
                                self.record_instance_status(tenant, name, Some(&status), at);
                            if let Err(e) = recorded.await {
                                tracing::debug!(key = %event.key, error = %e, "status not recorded");
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "runtime events unavailable"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Observes every instance once.
    async fn observe_all(&self) {
        use crate::platform::{Scope, model::InstanceSpec, store::PlatformStoreExt};
        let Ok(records) = self.store().list_all::<InstanceSpec>(&Scope::Operator, None).await
        else {
            return;
        };
        for record in records {
            if let Err(e) = self.observe_instance(&record.meta.tenant, &record.meta.name).await {
                tracing::debug!(error = %e, "observe");
            }
        }
    }
}
