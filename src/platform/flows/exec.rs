//! Code execution: submit → job id → events, through the exec engine, under the tenant's rate
//! limit; each job is kept in the tenant's history.

use std::fmt::Debug;

use chrono::Utc;
use futures::StreamExt;
use kws_core::{DnsLabel, JobId, OwnerId};
use kws_exec::{JobEvent, JobEvents, JobSnapshot, Limits, SubmitError};
use serde::{Deserialize, Serialize};

use futures::future::BoxFuture;

use super::{ended_error, parse_name, undoable};
use crate::platform::{
    Error, EventBody, Platform, Role, Scope,
    model::{JobSpec, JobStatus},
    ops::{Begin, Run, begin, request_hash},
    store::{Claims, Kind, Object, OpState, Operation, Page, PlatformStoreExt},
};

/// The operation of a submit with an idempotency key.
pub(crate) const SUBMIT: &str = "submit_job";

/// A job as the flow takes it.
struct NewJob<'a> {
    tenant: &'a OwnerId,
    language: DnsLabel,
    request: &'a SubmitJob,
    submitted_by: Option<&'a str>,
}

/// The code-execution engine as the Platform uses it.
///
/// # Contract
/// As `kws_exec::ExecEngine`: `submit` answers at once with a job id or a typed
/// refusal (nothing queued then); `events` replays a job's events from the first, then follows
/// it live, and ends after its terminal event; `user` is the rate limit's key.
#[async_trait::async_trait]
pub trait CodeRunner: Send + Sync + Debug + 'static {
    /// Accepts a job.
    async fn submit(
        &self,
        user: &OwnerId,
        language: &DnsLabel,
        source: &str,
        stdin: &str,
        limits: Limits,
    ) -> Result<JobId, SubmitError>;

    /// A job's events, from the first; `None` when unknown or past retention.
    fn events(&self, job: JobId) -> Option<JobEvents>;

    /// A job's events so far.
    fn result(&self, job: JobId) -> Option<JobSnapshot>;

    /// Each language's pool of warm sandboxes, now.
    fn pools(&self) -> std::collections::BTreeMap<DnsLabel, kws_exec::PoolStatus>;

    /// The languages it runs.
    fn languages(&self) -> Vec<DnsLabel> {
        self.pools().into_keys().collect()
    }

    /// Stops taking jobs, ends those queued or running, and removes what the runner made (its
    /// sandboxes). The Platform calls it at [`Platform::shutdown`].
    async fn shutdown(&self) -> Result<(), Error> {
        Ok(())
    }
}

#[cfg(feature = "docker")]
#[async_trait::async_trait]
impl CodeRunner for kws_exec::ExecEngine {
    async fn submit(
        &self,
        user: &OwnerId,
        language: &DnsLabel,
        source: &str,
        stdin: &str,
        limits: Limits,
    ) -> Result<JobId, SubmitError> {
        kws_exec::ExecEngine::submit(self, user, language, source, stdin, limits).await
    }

    fn events(&self, job: JobId) -> Option<JobEvents> {
        kws_exec::ExecEngine::events(self, job)
    }

    fn result(&self, job: JobId) -> Option<JobSnapshot> {
        kws_exec::ExecEngine::result(self, job)
    }

    fn pools(&self) -> std::collections::BTreeMap<DnsLabel, kws_exec::PoolStatus> {
        kws_exec::ExecEngine::pools(self)
    }

    async fn shutdown(&self) -> Result<(), Error> {
        self.close().await.map_err(|e| Error::backend("exec", e))
    }
}

/// Code to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct SubmitJob {
    /// The language (`python3`, `sh`, ...).
    pub language: String,
    /// The program.
    pub source: String,
    /// Its standard input.
    #[serde(default)]
    pub stdin: String,
    /// Wall time in milliseconds (`None`: the engine's default).
    pub wall_time_ms: Option<u64>,
    /// Output cap in bytes (`None`: the engine's default).
    pub output_bytes: Option<usize>,
}

impl Platform {
    /// Stops what the Platform runs beside its store for the process: the code-execution
    /// engine (its sandboxes are removed). Instances, routes and peers stay: they outlive the
    /// process by design. Call it once, after the last request.
    pub async fn shutdown(&self) -> Result<(), Error> {
        match self.exec() {
            Ok(exec) => exec.shutdown().await,
            Err(_) => Ok(()),
        }
    }

    /// Submits code for `tenant` (member role) and returns the job's id at once. Refused with
    /// `Invalid` (language, source, stdin, a limit or the key), `RateLimited` (the tenant's
    /// token bucket is empty), `Busy` (the language's queue is full) or `Unavailable`; nothing
    /// is queued or recorded then.
    ///
    /// With an `idempotency_key` the submit is an operation: the same key and request answer
    /// the job the first submit made (nothing runs again, and the rate limit is not charged),
    /// the same key with another request is `IdempotencyMismatch`. The request is compared by
    /// digests of its source and stdin, which the operation keeps instead of the code.
    pub async fn submit_job(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        request: SubmitJob,
        submitted_by: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<Object<JobSpec>, Error> {
        scope.require(tenant, Role::Member)?;
        let language = parse_name("language", &request.language)?;
        self.exec()?;
        self.store().get_tenant(scope, tenant).await?;
        let job = NewJob { tenant, language, request: &request, submitted_by };
        let Some(key) = idempotency_key else { return self.start_job(&job, None).await };
        let asked = serde_json::json!({
            "language": job.language,
            "source_sha256": request_hash(&serde_json::json!(request.source)),
            "stdin_sha256": request_hash(&serde_json::json!(request.stdin)),
            "wall_time_ms": request.wall_time_ms,
            "output_bytes": request.output_bytes,
        });
        let begun = begin(self, scope, tenant, SUBMIT, "job", Some(key), &asked, &asked).await?;
        let run = match begun {
            Begin::New(run) => run,
            Begin::Existing(op) if op.state == OpState::Succeeded => {
                let name = op.result.get("job").and_then(serde_json::Value::as_str);
                let name = name.ok_or_else(|| {
                    Error::backend("operation", format!("operation {} recorded no job", op.id))
                })?;
                return self.store().get::<JobSpec>(scope, tenant, name).await;
            }
            Begin::Existing(op) => return Err(ended_error(&op)),
        };
        let body = async {
            let object = self.start_job(&job, Some(&run)).await?;
            let result = serde_json::json!({ "job": object.meta.name });
            Ok((object, result))
        };
        undoable(&run, undo_submit, body).await
    }

    /// Hands `job` to the engine, then records it (as a step of `run` when there is one) and
    /// follows it. A refusal of the engine makes nothing.
    async fn start_job(
        &self,
        job: &NewJob<'_>,
        run: Option<&Run>,
    ) -> Result<Object<JobSpec>, Error> {
        let NewJob { tenant, language, request, submitted_by } = job;
        let defaults = Limits::default();
        let limits = Limits {
            wall_time: request
                .wall_time_ms
                .map_or(defaults.wall_time, std::time::Duration::from_millis),
            output_bytes: request.output_bytes.unwrap_or(defaults.output_bytes),
        };
        let id = self
            .exec()?
            .submit(tenant, language, &request.source, &request.stdin, limits)
            .await
            .map_err(submit_error)?;
        let name = DnsLabel::parse(&id.to_string()).map_err(|e| Error::backend("exec", e))?;
        let spec = JobSpec {
            language: language.to_string(),
            source_bytes: request.source.len(),
            stdin_bytes: request.stdin.len(),
            submitted_by: submitted_by.map(str::to_owned),
        };
        let store = self.store();
        let origin = run.map(Run::id);
        let record =
            store.create(&Scope::Operator, tenant, &name, None, Claims::default(), &spec, origin);
        let object = match run {
            Some(run) => run.step("record", record).await?,
            None => record.await?,
        };
        self.follow_job((*tenant).clone(), id, name);
        Ok(object)
    }

    /// Records a job's progress in its history and on the event stream, until it ends.
    fn follow_job(&self, tenant: OwnerId, job: JobId, name: DnsLabel) {
        let Ok(exec) = self.exec().cloned() else { return };
        let platform = self.clone();
        tokio::spawn(async move {
            let Some(mut events) = exec.events(job) else { return };
            while let Some(event) = events.next().await {
                let status = match &event {
                    JobEvent::Queued { .. } => job_status("queued", None, None),
                    JobEvent::Started => job_status("running", None, None),
                    JobEvent::Exited { code, wall_ms } => {
                        job_status("exited", Some(*code), Some(*wall_ms))
                    }
                    JobEvent::TimedOut => job_status("timed_out", None, None),
                    JobEvent::OutputLimitExceeded => {
                        job_status("output_limit_exceeded", None, None)
                    }
                    JobEvent::Killed { .. } => job_status("killed", None, None),
                    JobEvent::Failed { .. } => job_status("failed", None, None),
                    _ => continue,
                };
                let store = platform.store();
                let at = Utc::now();
                let seen = store.observe::<JobSpec>(
                    &Scope::Operator,
                    &tenant,
                    name.as_str(),
                    Some(&status),
                    at,
                );
                if let Err(e) = seen.await {
                    tracing::debug!(%job, error = %e, "job status not recorded");
                }
                let body = EventBody::Job {
                    id: job.to_string(),
                    state: status.state.clone(),
                    exit_code: status.exit_code,
                };
                platform.events().publish(&tenant, body);
            }
        });
    }

    /// A job's events (replayed from the first, then live), when the job is the tenant's.
    /// Another tenant's job is `NotFound`.
    pub async fn job_events(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        job: &str,
    ) -> Result<JobEvents, Error> {
        scope.require(tenant, Role::Viewer)?;
        let id = JobId::parse(job).map_err(|e| Error::invalid("job", e))?;
        self.store().get::<JobSpec>(scope, tenant, job).await?;
        self.exec()?.events(id).ok_or_else(|| Error::not_found("job", job))
    }
}

fn job_status(state: &str, exit_code: Option<i64>, wall_ms: Option<u64>) -> JobStatus {
    let ended = !matches!(state, "queued" | "running");
    JobStatus { state: state.to_owned(), exit_code, wall_ms, ended_at: ended.then(Utc::now) }
}

fn submit_error(e: SubmitError) -> Error {
    match e {
        SubmitError::UnknownLanguage(language) => {
            Error::invalid("language", format!("{language} is not a configured language"))
        }
        SubmitError::Busy { .. } => Error::Busy { retry_after: std::time::Duration::from_secs(1) },
        SubmitError::RateLimited { retry_after, .. } => Error::RateLimited { retry_after },
        SubmitError::Input { what, why } => {
            Error::invalid(if what == "stdin" { "stdin" } else { "source" }, why)
        }
        SubmitError::Limit { limit, value, expected } => Error::invalid(
            if limit == "wall_time" { "wall_time_ms" } else { "output_bytes" },
            format!("{value} is out of range: {expected}"),
        ),
        SubmitError::ShutDown => Error::Unavailable {
            feature: "code execution",
            reason: "the engine has shut down".to_owned(),
        },
        e => Error::backend("exec", e),
    }
}

/// Undoes a keyed submit: removes the job's record when this operation made it. The engine
/// forgets a job whose process is gone; one still running ends at its wall time, unrecorded.
pub(crate) fn undo_submit<'a>(
    platform: &'a Platform,
    op: &'a Operation,
    step: &'a str,
) -> BoxFuture<'a, Result<(), Error>> {
    Box::pin(async move {
        if step != "record" {
            return Ok(());
        }
        // The record's name is the engine's job id, which only the record keeps: look for the
        // tenant's job this operation made.
        let store = platform.store();
        let mut page = Page::first(Page::MAX);
        loop {
            let records =
                store.list_objects(&Scope::Operator, Kind::Job, Some(&op.tenant), &page).await?;
            if let Some(own) = records.iter().find(|r| r.origin == Some(op.id)) {
                return platform.remove_own::<JobSpec>(op, own.meta.name.as_str()).await;
            }
            match records.last() {
                Some(last) if records.len() == Page::MAX => {
                    page.after = Some((op.tenant.clone(), last.meta.name.to_string()));
                }
                _ => return Ok(()),
            }
        }
    })
}
