//! Running one operation: its steps saved as they go, cancel and deadline raced against every
//! step, and the undo of its finished steps in reverse order when it fails.

use std::{future::Future, sync::Arc, time::Duration};

use chrono::Utc;
use futures::future::BoxFuture;
use kws_core::OwnerId;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{check_idempotency_key, request_hash};
use crate::platform::{
    Error, Platform, Scope,
    events::EventBody,
    store::{Begun, Json, NewOperation, OpState, Operation, Step, StepState},
};

/// Undoes one step of an operation (idempotent; works whether or not the step's effect
/// happened).
pub(crate) type Undo =
    for<'a> fn(&'a Platform, &'a Operation, &'a str) -> BoxFuture<'a, Result<(), Error>>;

/// A running operation, shared by the flow's steps.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    inner: Arc<RunInner>,
}

#[derive(Debug)]
struct RunInner {
    platform: Platform,
    op: tokio::sync::Mutex<Operation>,
    cancel: CancellationToken,
    id: Uuid,
    kind: String,
    /// Flows that make things stop on a cancel or their deadline; flows that remove things
    /// always run to their end.
    cancellable: bool,
}

impl Drop for RunInner {
    fn drop(&mut self) {
        self.platform.forget_run(self.id);
    }
}

/// What `begin` found.
#[derive(Debug)]
pub(crate) enum Begin {
    /// A new operation to run.
    New(Run),
    /// The operation an earlier request with the same idempotency key made (ended, or waited
    /// for until it ended or its deadline passed).
    Existing(Operation),
}

/// Records a new operation of `kind` on `target`, or finds the one `key` made. `asked` is the
/// request as the client sent it (a retry must send the same); `recorded` is what the steps
/// and their undo need (no secrets), kept as the operation's `request.recorded`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn begin(
    platform: &Platform,
    scope: &Scope,
    tenant: &OwnerId,
    kind: &str,
    target: &str,
    key: Option<&str>,
    asked: &impl Serialize,
    recorded: &impl Serialize,
) -> Result<Begin, Error> {
    if let Some(key) = key {
        check_idempotency_key(key)?;
    }
    let json = |v: &dyn erased::Json| v.to_json();
    let asked = json(asked)?;
    let request = serde_json::json!({ "asked": asked, "recorded": json(recorded)? });
    let settings = platform.settings();
    let new = NewOperation {
        tenant: tenant.clone(),
        kind: kind.to_owned(),
        target: target.to_owned(),
        idempotency_key: key.map(str::to_owned),
        request_hash: request_hash(&serde_json::json!([kind, target, asked])),
        request,
        deadline: Utc::now() + to_chrono(settings.operation_deadline),
        holder: platform.holder().to_owned(),
        lease_until: Utc::now() + to_chrono(settings.operation_lease),
    };
    match platform.store().begin_operation(scope, new).await? {
        Begun::New(op) => Ok(Begin::New(Run::adopt(platform, op))),
        Begun::Existing(op) => Ok(Begin::Existing(wait_final(platform, scope, op).await?)),
    }
}

/// What the steps of `op` recorded at its start (see [`begin`]).
pub(crate) fn request_of<T: serde::de::DeserializeOwned>(op: &Operation) -> Result<T, Error> {
    let value = op.request.get("recorded").cloned().unwrap_or(Json::Null);
    serde_json::from_value(value)
        .map_err(|e| Error::backend("operation", format!("operation {} request: {e}", op.id)))
}

mod erased {
    use crate::platform::Error;

    /// `Serialize` as an object-safe trait, so `begin` takes either argument the same way.
    pub(super) trait Json {
        fn to_json(&self) -> Result<serde_json::Value, Error>;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Result<serde_json::Value, Error> {
            serde_json::to_value(self).map_err(|e| Error::backend("store", e))
        }
    }
}

/// Waits until `op` has ended (polling the store), or its deadline passed.
pub(crate) async fn wait_final(
    platform: &Platform,
    scope: &Scope,
    mut op: Operation,
) -> Result<Operation, Error> {
    let mut pause = Duration::from_millis(20);
    while !op.state.is_final() && Utc::now() < op.deadline {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
        op = platform.store().get_operation(scope, op.id).await?;
    }
    Ok(op)
}

pub(crate) fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Run {
    /// Runs `op` (new, or claimed by the reaper) in this process.
    pub(crate) fn adopt(platform: &Platform, op: Operation) -> Self {
        let cancel = platform.register_run(op.id);
        let (id, kind) = (op.id, op.kind.clone());
        let cancellable = matches!(super::recovery_of(&kind), Some(super::Recovery::Compensate(_)));
        let inner = RunInner {
            platform: platform.clone(),
            op: tokio::sync::Mutex::new(op),
            cancel,
            id,
            kind,
            cancellable,
        };
        Self { inner: Arc::new(inner) }
    }

    /// The operation's id.
    pub(crate) fn id(&self) -> Uuid {
        self.inner.id
    }

    /// The operation as it stands.
    pub(crate) async fn operation(&self) -> Operation {
        self.inner.op.lock().await.clone()
    }

    fn platform(&self) -> &Platform {
        &self.inner.platform
    }

    /// Runs one step: saved as `started` before `work`, `done` after it. Fails without
    /// starting it when the operation was cancelled or passed its deadline; a cancel or the
    /// deadline while `work` runs drops `work` (its effect may have happened: the undo finds
    /// out).
    pub(crate) async fn step<T>(
        &self,
        name: &'static str,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        self.check_go().await?;
        self.mark(name, StepState::Started).await?;
        let deadline = self.inner.op.lock().await.deadline;
        let left = (deadline - Utc::now()).to_std().unwrap_or_default();
        let id = self.id().to_string();
        let out = if self.inner.cancellable {
            tokio::select! {
                biased;
                () = self.inner.cancel.cancelled() => Err(Error::Cancelled(id)),
                () = tokio::time::sleep(left) => Err(Error::DeadlineExceeded(id)),
                out = work => out,
            }
        } else {
            work.await
        };
        let out = out.map_err(|e| failed(name, e))?;
        self.mark(name, StepState::Done).await?;
        let kind = self.inner.kind.clone();
        self.platform().faults().after(&kind, name).await.map_err(|e| failed(name, e))?;
        Ok(out)
    }

    /// Whether the operation may go on: not cancelled, not past its deadline.
    async fn check_go(&self) -> Result<(), Error> {
        if !self.inner.cancellable {
            return Ok(());
        }
        let (deadline, cancelled_here) = {
            let op = self.inner.op.lock().await;
            (op.deadline, op.cancel_requested)
        };
        let id = self.id().to_string();
        if cancelled_here || self.inner.cancel.is_cancelled() {
            return Err(Error::Cancelled(id));
        }
        if Utc::now() >= deadline {
            return Err(Error::DeadlineExceeded(id));
        }
        // A cancel asked for in another process shows in the store.
        let stored = self.platform().store().get_operation(&Scope::Operator, self.id()).await?;
        if stored.cancel_requested {
            return Err(Error::Cancelled(id));
        }
        Ok(())
    }

    async fn mark(&self, name: &str, state: StepState) -> Result<(), Error> {
        let mut op = self.inner.op.lock().await;
        let now = Utc::now();
        match op.steps.iter_mut().rev().find(|s| s.name == name) {
            Some(step) if state != StepState::Started => {
                step.state = state;
                step.at = now;
            }
            _ => op.steps.push(Step { name: name.to_owned(), state, at: now }),
        }
        *op = self.platform().store().save_operation(&op).await?;
        self.publish(&op, Some(name));
        Ok(())
    }

    fn publish(&self, op: &Operation, step: Option<&str>) {
        self.platform().events().publish(
            &op.tenant,
            EventBody::Operation {
                id: op.id,
                kind: op.kind.clone(),
                target: op.target.clone(),
                state: op.state,
                step: step.map(str::to_owned),
            },
        );
    }

    async fn end(&self, state: OpState, error: Option<String>, result: Json) -> Operation {
        let mut op = self.inner.op.lock().await;
        op.state = state;
        op.error = error;
        op.result = result;
        match self.platform().store().save_operation(&op).await {
            Ok(saved) => *op = saved,
            // The record stays `running`; the reaper of whichever process holds it ends it.
            Err(e) => tracing::warn!(op = %op.id, error = %e, "operation end not saved"),
        }
        self.publish(&op, None);
        op.clone()
    }

    /// Ends the operation as `succeeded` with `result` (no secrets).
    pub(crate) async fn succeed(&self, result: Json) -> Operation {
        self.end(OpState::Succeeded, None, result).await
    }

    /// Ends the operation as `failed` without undoing anything (for flows that finish rather
    /// than undo, and for failures before any effect).
    pub(crate) async fn fail(&self, error: &Error) -> Operation {
        self.end(OpState::Failed, Some(error.to_string()), Json::Null).await
    }

    /// Undoes every step that started, newest first, then ends the operation: `compensated`
    /// when every undo succeeded, `failed` (naming what could not be undone) otherwise.
    pub(crate) async fn compensate(&self, error: &Error, undo: Undo) -> Operation {
        let steps: Vec<String> = {
            let op = self.inner.op.lock().await;
            op.steps
                .iter()
                .filter(|s| matches!(s.state, StepState::Started | StepState::Done))
                .map(|s| s.name.clone())
                .collect()
        };
        let mut failures = Vec::new();
        for name in steps.iter().rev() {
            let op = self.operation().await;
            let undone = undo(self.platform(), &op, name).await;
            let state = match &undone {
                Ok(()) => StepState::Undone,
                Err(e) => {
                    tracing::warn!(op = %op.id, step = %name, error = %e, "undo failed");
                    failures.push(format!("undo of {name}: {e}"));
                    StepState::UndoFailed
                }
            };
            if let Err(e) = self.mark(name, state).await {
                tracing::warn!(op = %op.id, step = %name, error = %e, "undo not saved");
            }
        }
        match failures.is_empty() {
            true => self.end(OpState::Compensated, Some(error.to_string()), Json::Null).await,
            false => {
                let message = format!("{error}; {}", failures.join("; "));
                self.end(OpState::Failed, Some(message), Json::Null).await
            }
        }
    }
}

fn failed(step: &'static str, error: Error) -> Error {
    match error {
        e @ (Error::Cancelled(_) | Error::DeadlineExceeded(_) | Error::StepFailed { .. }) => e,
        e => Error::StepFailed { step, source: Box::new(e) },
    }
}
