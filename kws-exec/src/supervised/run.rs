//! Running one job through a sandbox's supervisor: one `Run` frame, its output as it comes,
//! its end once every process of it is reaped; then the engine's own check from outside.

use std::time::{Duration, Instant};

use kws_exec_supervisor::protocol::{Done, End, Report, Request, Run};
use tokio::time::timeout_at;

use super::{KILL_LIMIT, SupervisorLink, WIPE_LIMIT};
use crate::{
    event::JobEvent,
    journal::Journal,
    limits::OutputBudget,
    queue::JobRequest,
    sandbox::{Aftermath, Resident, Sandbox, Sandboxes},
};

/// How much longer than the job's wall time the engine waits for the supervisor's `Done`
/// (its own kill and reap budget, and slack) before it kills the sandbox itself.
const BACKSTOP: Duration = KILL_LIMIT.saturating_add(Duration::from_secs(3));
/// How long after `Done` the supervisor may take to wipe the sandbox and say `Ready`.
const READY_AFTER_JOB: Duration = WIPE_LIMIT.saturating_add(Duration::from_secs(3));

/// The pieces a job run needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SupervisedRun<'a> {
    pub(crate) sandboxes: &'a Sandboxes,
    pub(crate) journal: &'a Journal,
}

impl SupervisedRun<'_> {
    /// Runs `job` in `sandbox` through its supervisor, pushing `Started`, its output and its
    /// terminal event. The terminal event is pushed only once no process of the job is left:
    /// the supervisor reaped them all before it said `Done` (or the sandbox was killed).
    pub(crate) async fn run(self, sandbox: &mut Sandbox, job: &JobRequest) -> Aftermath {
        let Resident::Supervisor(mut link) =
            std::mem::replace(&mut sandbox.resident, Resident::Nothing)
        else {
            self.journal.push(job.id, failed("the sandbox has no supervisor".to_owned()));
            return Aftermath::Retire;
        };
        match self.exchange(sandbox, job, &mut link).await {
            Ok(done) => self.finish(sandbox, job, link, done).await,
            Err(event) => {
                // Let go of the channel first: the kill must not wait for its stream.
                drop(link);
                self.kill(sandbox, job, event).await
            }
        }
    }

    /// Sends the job and passes its output on until its `Done`; `Err` is the job's terminal
    /// event when the supervisor failed it (the sandbox must then be killed).
    async fn exchange(
        self,
        sandbox: &Sandbox,
        job: &JobRequest,
        link: &mut SupervisorLink,
    ) -> Result<Done, JobEvent> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let request = Request::Run(Run {
            wall_ms: ms(job.limits.wall_time),
            output_bytes: job.limits.output_bytes as u64,
            source: job.source.as_bytes().to_vec(),
            stdin: job.stdin.as_bytes().to_vec(),
        });
        let docker = &self.sandboxes.docker;
        let started = Instant::now();
        self.journal.push(job.id, JobEvent::Started);
        if let Err(why) = link.send(&request).await {
            return Err(sandbox_died(&super::ended(docker, &sandbox.id, why).await));
        }
        let backstop = tokio::time::Instant::from_std(started + job.limits.wall_time + BACKSTOP);
        let mut budget = OutputBudget { left: job.limits.output_bytes };
        loop {
            let Ok(received) = timeout_at(backstop, link.receive()).await else {
                let reason = "the sandbox's supervisor stopped answering; the sandbox was killed";
                return Err(JobEvent::Killed { reason: reason.to_owned() });
            };
            let (bytes, wrap): (_, fn(Vec<u8>) -> JobEvent) = match received {
                Some(Ok(Report::Stdout(bytes))) => (bytes, JobEvent::Stdout),
                Some(Ok(Report::Stderr(bytes))) => (bytes, JobEvent::Stderr),
                Some(Ok(Report::Done(done))) => return Ok(done),
                Some(Ok(Report::Fault(why))) => {
                    return Err(sandbox_died(&format!("its supervisor gave up: {why}")));
                }
                Some(Ok(other)) => {
                    return Err(sandbox_died(&format!("its supervisor said {other:?} mid-job")));
                }
                Some(Err(why)) => {
                    return Err(sandbox_died(&super::ended(docker, &sandbox.id, why).await));
                }
                None => {
                    let why = super::ended(docker, &sandbox.id, "no more reports").await;
                    return Err(sandbox_died(&why));
                }
            };
            // The supervisor enforces the cap; one that sends more is not trusted further.
            let fits = budget.take(bytes.len());
            if fits < bytes.len() {
                tracing::warn!(container = %sandbox.id, "an exec supervisor passed the output cap");
                return Err(JobEvent::OutputLimitExceeded);
            }
            if fits > 0 {
                self.journal.push(job.id, wrap(bytes));
            }
        }
    }

    /// The job is over and the supervisor reaped every process of it: record its end, then
    /// wait for the supervisor's `Ready` (the wipe and its own check) and check from outside,
    /// by the cgroup, that only the supervisor is left, before the sandbox takes another job
    /// (and, for a warm language, before the next job's process is prepared).
    async fn finish(
        self,
        sandbox: &mut Sandbox,
        job: &JobRequest,
        mut link: SupervisorLink,
        done: Done,
    ) -> Aftermath {
        let event = match done.end {
            End::Exited(code) => {
                JobEvent::Exited { code: i64::from(code), wall_ms: done.wall_us / 1000 }
            }
            End::Signaled { oom: true, .. } => JobEvent::Killed {
                reason: "out of memory: the sandbox's memory limit was reached".to_owned(),
            },
            End::Signaled { signal, .. } => JobEvent::Killed { reason: format!("signal {signal}") },
            End::TimedOut => JobEvent::TimedOut,
            End::OutputLimit => JobEvent::OutputLimitExceeded,
            End::NotStarted(why) => failed(format!("the job could not start: {why}")),
        };
        self.journal.push(job.id, event);
        let ready = tokio::time::timeout(READY_AFTER_JOB, link.receive()).await;
        sandbox.resident = Resident::Supervisor(link);
        let checked = match ready {
            Ok(Some(Ok(Report::Ready))) => self.sandboxes.prepare_next(sandbox).await,
            Ok(Some(Ok(Report::Fault(why)))) => Err(format!("its supervisor found: {why}")),
            Ok(Some(Ok(other))) => Err(format!("its supervisor said {other:?} after the job")),
            Ok(Some(Err(why))) => Err(why),
            Ok(None) => Err("its supervisor's channel ended".to_owned()),
            Err(_) => Err(format!("its supervisor was not ready within {READY_AFTER_JOB:?}")),
        };
        match checked {
            Ok(()) => Aftermath::Reuse,
            Err(why) => {
                tracing::debug!(container = %sandbox.id, "retiring an exec sandbox: {why}");
                Aftermath::Retire
            }
        }
    }

    /// Kills the sandbox first, then records why: when the event is seen, the program is gone.
    async fn kill(self, sandbox: &mut Sandbox, job: &JobRequest, event: JobEvent) -> Aftermath {
        self.sandboxes.kill_or_retire(sandbox).await;
        self.journal.push(job.id, event);
        Aftermath::Retire
    }
}

/// The event of a job whose sandbox's supervisor ended or broke down under it.
fn sandbox_died(why: &str) -> JobEvent {
    JobEvent::Killed { reason: format!("the sandbox died: {why}") }
}

fn failed(error: String) -> JobEvent {
    JobEvent::Failed { error }
}
