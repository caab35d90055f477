//! Faults injected after a step of a flow: how the tests prove that every step's failure (and a
//! crash at every step) leaves nothing behind. Only tests set them (feature `testkit`).

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use crate::platform::Error;

/// What to do when a flow reaches the point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fail the flow as if the step had failed just after it finished.
    Fail,
    /// Stop there for good (a test then kills the process: a crash at that point).
    Pause,
}

/// Where: after step `step` of operation kind `kind` (`add_device`, `launch_instance`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FaultPoint {
    /// The operation kind.
    pub kind: String,
    /// The step.
    pub step: String,
}

/// The faults set on a Platform.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    faults: Mutex<HashMap<FaultPoint, Fault>>,
}

impl FaultPlan {
    fn faults(&self) -> MutexGuard<'_, HashMap<FaultPoint, Fault>> {
        self.faults.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg_attr(not(feature = "testkit"), allow(dead_code))]
    pub(crate) fn set(&self, point: FaultPoint, fault: Option<Fault>) {
        match fault {
            Some(fault) => self.faults().insert(point, fault),
            None => self.faults().remove(&point),
        };
    }

    /// Applies the fault set after `step` of `kind`, if any.
    pub(crate) async fn after(&self, kind: &str, step: &str) -> Result<(), Error> {
        let point = FaultPoint { kind: kind.to_owned(), step: step.to_owned() };
        let fault = self.faults().get(&point).copied();
        match fault {
            None => Ok(()),
            Some(Fault::Fail) => Err(Error::backend("fault", format!("injected after {step}"))),
            Some(Fault::Pause) => {
                tracing::warn!(kind, step, "paused by an injected fault");
                std::future::pending().await
            }
        }
    }
}
