//! Running one job in one sandbox: stream its output, enforce its wall time and output cap by
//! killing the sandbox, and turn how it ended into its terminal event.

use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use futures::StreamExt;
use tokio::{io::AsyncWriteExt, time::timeout_at};

use super::{Armed, ArmedIo, EventWatch, script::source_line};
use crate::{
    event::JobEvent,
    journal::Journal,
    limits::OutputBudget,
    queue::JobRequest,
    sandbox::{Aftermath, Resident, Sandbox, Sandboxes},
};

/// How long to wait for Docker's `oom` event after a SIGKILLed exit.
const OOM_EVENT_WAIT: Duration = Duration::from_secs(1);
/// How long to wait for Docker's `exec_die` event before asking Docker for the exit code.
const EXIT_EVENT_WAIT: Duration = Duration::from_millis(250);

/// The pieces a job run needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobRun<'a> {
    pub(crate) sandboxes: &'a Sandboxes,
    pub(crate) watch: &'a EventWatch,
    pub(crate) journal: &'a Journal,
}

impl JobRun<'_> {
    /// Runs `job` in its armed `sandbox`, pushing `Started`, its output and its terminal
    /// event.
    pub(crate) async fn run(self, sandbox: &mut Sandbox, job: &JobRequest) -> Aftermath {
        let Resident::Armed(armed) = std::mem::replace(&mut sandbox.resident, Resident::Nothing)
        else {
            return self.fail(job, "the sandbox was not armed".to_owned());
        };
        let Armed { exec, io } = armed;
        let ArmedIo { mut output, mut input } =
            io.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        let ooms_before = self.watch.ooms(&sandbox.id);
        self.watch.expect_exec(&exec);
        let started = Instant::now();
        self.journal.push(job.id, JobEvent::Started);
        let deadline = tokio::time::Instant::from_std(started + job.limits.wall_time);
        // The source line, then stdin, then end of input; a program that does not read its
        // stdin must not hold up its own output, so this runs beside the output loop.
        let mut feed = source_line(&job.source);
        feed.extend_from_slice(job.stdin.as_bytes());
        let writer = tokio::spawn(async move {
            let _ = input.write_all(&feed).await;
            let _ = input.shutdown().await;
        });
        let mut budget = OutputBudget { left: job.limits.output_bytes };
        let ending = loop {
            let chunk = match timeout_at(deadline, output.next()).await {
                Err(_) => break Some(JobEvent::TimedOut),
                Ok(None) => break None,
                Ok(Some(Err(err))) => break Some(failed(format!("reading output: {err}"))),
                Ok(Some(Ok(chunk))) => chunk,
            };
            let (bytes, wrap): (_, fn(Vec<u8>) -> JobEvent) = match chunk {
                LogOutput::StdOut { message } => (message, JobEvent::Stdout),
                LogOutput::StdErr { message } => (message, JobEvent::Stderr),
                _ => continue,
            };
            let fits = budget.take(bytes.len());
            if fits > 0 {
                self.journal.push(job.id, wrap(bytes[..fits].to_vec()));
            }
            if fits < bytes.len() {
                break Some(JobEvent::OutputLimitExceeded);
            }
        };
        // Let go of the output first: Docker does not finish stopping a container while an
        // exec's output waits to be read.
        drop(output);
        writer.abort();
        let aftermath = match ending {
            Some(event) => self.kill(sandbox, job, event).await,
            None => self.ended(sandbox, job, &exec, deadline, started, ooms_before).await,
        };
        self.watch.forget_exec(&exec);
        aftermath
    }

    /// The output closed; the program may still run (it can close its own stdout), so its end
    /// is what Docker says, bounded by the deadline like everything else.
    async fn ended(
        self,
        sandbox: &mut Sandbox,
        job: &JobRequest,
        exec: &str,
        deadline: tokio::time::Instant,
        started: Instant,
        ooms_before: u64,
    ) -> Aftermath {
        let docker = &self.sandboxes.docker;
        let code = match timeout_at(deadline, self.exit_code(exec)).await {
            Ok(code) => code,
            Err(_) => return self.kill(sandbox, job, JobEvent::TimedOut).await,
        };
        let wall_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if !(129..=128 + 64).contains(&code) {
            self.journal.push(job.id, JobEvent::Exited { code, wall_ms });
            return Aftermath::ProveClean;
        }
        // Killed by a signal: the memory limit, its own doing, or the sandbox dying.
        let signal = code - 128;
        let oom =
            signal == 9 && self.watch.oom_after(&sandbox.id, ooms_before, OOM_EVENT_WAIT).await;
        let running = docker
            .inspect_container(
                &sandbox.id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.running)
            .unwrap_or(false);
        let reason = if !running {
            "the sandbox stopped".to_owned()
        } else if oom {
            "out of memory: the sandbox's memory limit was reached".to_owned()
        } else {
            format!("signal {signal}")
        };
        self.journal.push(job.id, JobEvent::Killed { reason });
        if running { Aftermath::ProveClean } else { Aftermath::Retire }
    }

    /// The program's exit code, from Docker's `exec_die` event: the event stream brings it
    /// without a request (an `inspect_exec` per job costs Docker CPU). When the event is late
    /// (the stream reconnecting), Docker is asked once, then the event is awaited.
    async fn exit_code(self, exec: &str) -> i64 {
        let died = self.watch.exec_died(exec);
        tokio::pin!(died);
        tokio::select! {
            code = &mut died => return code,
            () = tokio::time::sleep(EXIT_EVENT_WAIT) => {}
        }
        let inspected = self.sandboxes.docker.inspect_exec(exec).await.ok();
        match inspected.and_then(|i| if i.running == Some(false) { i.exit_code } else { None }) {
            Some(code) => code,
            None => died.await,
        }
    }

    /// Kills the sandbox first, then records why: when the event is seen, the program is gone.
    async fn kill(self, sandbox: &mut Sandbox, job: &JobRequest, event: JobEvent) -> Aftermath {
        self.sandboxes.kill_or_retire(sandbox).await;
        self.journal.push(job.id, event);
        Aftermath::Retire
    }

    fn fail(self, job: &JobRequest, error: String) -> Aftermath {
        self.journal.push(job.id, failed(error));
        Aftermath::Retire
    }
}

fn failed(error: String) -> JobEvent {
    JobEvent::Failed { error }
}
