//! The reaper: operations whose holder stopped renewing its lease (a crash, a kill -9, a
//! paused process) are claimed and ended: flows that make things are undone, flows that remove
//! things are finished.

use futures::future::BoxFuture;

use super::{Run, run::Undo};
use crate::platform::{
    Error, Platform,
    store::{OpState, Operation},
};

/// Re-runs a flow that removes things from its recorded request (every step is idempotent).
pub(crate) type Rerun = for<'a> fn(&'a Platform, Run) -> BoxFuture<'a, Result<(), Error>>;

/// How an interrupted operation of a kind ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Recovery {
    /// Undo every step that started (flows that make things).
    Compensate(Undo),
    /// Run it again to its end (flows that remove or change things).
    Finish(Rerun),
}

/// The recovery of operations of `kind`.
pub(crate) fn recovery_of(kind: &str) -> Option<Recovery> {
    crate::platform::flows::recovery_of(kind)
}

impl Platform {
    /// Claims every unfinished operation whose lease passed (on the store's clock) and ends it:
    /// undone or finished, by its kind. Returns the operations as they ended. Runs at start-up
    /// and on a timer; safe beside other processes doing the same (each operation is claimed by
    /// one of them).
    pub async fn reap(&self) -> Result<Vec<Operation>, Error> {
        let lease = self.settings().operation_lease;
        let claimed = self.store().claim_expired(self.holder(), lease).await?;
        let mut ended = Vec::with_capacity(claimed.len());
        for op in claimed {
            tracing::warn!(op = %op.id, kind = %op.kind, target = %op.target, "reaping an interrupted operation");
            let run = Run::adopt(self, op.clone());
            let interrupted = Error::backend(
                "operation",
                format!("interrupted (its process stopped) after {} steps", op.steps.len()),
            );
            let done = match recovery_of(&op.kind) {
                Some(Recovery::Compensate(undo)) => run.compensate(&interrupted, undo).await,
                Some(Recovery::Finish(rerun)) => match rerun(self, run.clone()).await {
                    Ok(()) => run.operation().await,
                    Err(e) => run.fail(&e).await,
                },
                None => {
                    let unknown = Error::backend("operation", format!("unknown kind {}", op.kind));
                    run.fail(&unknown).await
                }
            };
            if done.state == OpState::Running {
                tracing::warn!(op = %done.id, "reaped operation could not be saved as ended");
            }
            ended.push(done);
        }
        Ok(ended)
    }
}
