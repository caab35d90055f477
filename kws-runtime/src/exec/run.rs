//! Running one job in one sandbox: stream its output, enforce its wall time and output cap by
//! killing the sandbox, and turn how it ended into its terminal event.

use std::time::{Duration, Instant};

use bollard::{
    container::LogOutput,
    exec::{CreateExecOptions, StartExecOptions, StartExecResults},
};
use futures::StreamExt;
use tokio::time::timeout_at;

use super::{
    event::JobEvent,
    journal::Journal,
    language::Language,
    queue::JobRequest,
    sandbox::{BASE_ENV, JOB_USER, Sandbox, Sandboxes, WORK_DIR},
    watcher::EventWatch,
};

/// What to do with the sandbox after the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aftermath {
    /// The program ended by itself: the sandbox may be reused once proven clean.
    ProveClean,
    /// The sandbox was killed or is in doubt: retire it.
    Retire,
}

/// How long to wait for Docker's `oom` event after a SIGKILLed exit.
const OOM_EVENT_WAIT: Duration = Duration::from_millis(200);

/// The shell script that writes the source, compiles it if the language says so, and runs it
/// with the job's stdin. Source and stdin arrive as `$1` and `$2`, never inside the script.
pub(crate) fn job_script(language: &Language) -> String {
    let file = shell_quote(&language.source_file);
    let run = shell_words(&language.run);
    let compile = language
        .compile
        .as_ref()
        .map(|c| format!("{} </dev/null || exit $?\n", shell_words(c)))
        .unwrap_or_default();
    format!(
        "cd {WORK_DIR} || exit 125\nprintf %s \"$1\" > {file} || exit 125\n{compile}\
         if [ -n \"$2\" ]; then printf %s \"$2\" | {run}; else exec {run} </dev/null; fi"
    )
}

fn shell_words(words: &[String]) -> String {
    words.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" ")
}

fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Bytes a job may still print.
#[derive(Debug)]
struct OutputBudget {
    left: usize,
}

impl OutputBudget {
    /// How many of `len` new bytes fit; the budget shrinks by that much.
    fn take(&mut self, len: usize) -> usize {
        let fits = len.min(self.left);
        self.left -= fits;
        fits
    }
}

/// The pieces a job run needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobRun<'a> {
    pub(crate) sandboxes: &'a Sandboxes,
    pub(crate) watch: &'a EventWatch,
    pub(crate) journal: &'a Journal,
}

impl JobRun<'_> {
    /// Runs `job` in `sandbox`, pushing `Started`, its output and its terminal event.
    pub(crate) async fn run(
        self,
        language: &Language,
        sandbox: &Sandbox,
        job: &JobRequest,
    ) -> Aftermath {
        let docker = &self.sandboxes.docker;
        let env = BASE_ENV.iter().map(|s| (*s).to_owned()).chain(language.env.iter().cloned());
        let options = CreateExecOptions {
            cmd: Some(vec![
                "sh".to_owned(),
                "-c".to_owned(),
                job_script(language),
                "kws-job".to_owned(),
                job.source.clone(),
                job.stdin.clone(),
            ]),
            user: Some(JOB_USER.to_owned()),
            env: Some(env.collect()),
            working_dir: Some(WORK_DIR.to_owned()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..CreateExecOptions::default()
        };
        let ooms_before = self.watch.ooms(&sandbox.id);
        let exec = match docker.create_exec(&sandbox.id, options).await {
            Ok(exec) => exec,
            Err(err) => return self.fail(job, format!("creating the process: {err}")),
        };
        self.watch.expect_exec(&exec.id);
        let started = Instant::now();
        self.journal.push(job.id, JobEvent::Started);
        let deadline = tokio::time::Instant::from_std(started + job.limits.wall_time);
        let aftermath = self.follow(sandbox, job, &exec.id, deadline, started, ooms_before).await;
        self.watch.forget_exec(&exec.id);
        aftermath
    }

    async fn follow(
        self,
        sandbox: &Sandbox,
        job: &JobRequest,
        exec: &str,
        deadline: tokio::time::Instant,
        started: Instant,
        ooms_before: u64,
    ) -> Aftermath {
        let docker = &self.sandboxes.docker;
        let start = StartExecOptions { detach: false, tty: false, output_capacity: None };
        let mut output = match docker.start_exec(exec, Some(start)).await {
            Ok(StartExecResults::Attached { output, .. }) => output,
            Ok(StartExecResults::Detached) => return self.fail(job, "started detached".into()),
            Err(err) => return self.fail(job, format!("starting the process: {err}")),
        };
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
        if let Some(event) = ending {
            return self.kill(sandbox, job, event).await;
        }
        // Output closed; the program may still run (it can close its own stdout), so its end is
        // what Docker says, bounded by the deadline like everything else.
        let inspected = docker.inspect_exec(exec).await.ok();
        let code = match inspected
            .and_then(|i| if i.running == Some(false) { i.exit_code } else { None })
        {
            Some(code) => code,
            None => match timeout_at(deadline, self.watch.exec_died(exec)).await {
                Ok(code) => code,
                Err(_) => return self.kill(sandbox, job, JobEvent::TimedOut).await,
            },
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

    /// Kills the sandbox first, then records why: when the event is seen, the program is gone.
    async fn kill(self, sandbox: &Sandbox, job: &JobRequest, event: JobEvent) -> Aftermath {
        if let Err(err) = self.sandboxes.kill(sandbox).await {
            tracing::warn!(container = %sandbox.id, "killing an exec sandbox failed: {err}");
            // Removal (which the retirement does next) stops it even so.
            self.sandboxes.retire(sandbox).await;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_quotes_the_language_and_never_holds_user_input() {
        let mut language = Language::python3();
        language.source_file = "it's.py".to_owned();
        language.compile = Some(vec!["cc".into(), "-o".into(), "a b".into()]);
        let script = job_script(&language);
        assert!(script.contains(r"> 'it'\''s.py'"), "{script}");
        assert!(script.contains("'cc' '-o' 'a b' </dev/null || exit $?"), "{script}");
        assert!(script.contains("exec 'python3' '-I' '-S' '-u' 'main.py' </dev/null"), "{script}");
    }

    #[test]
    fn the_output_budget_cuts_at_the_limit() {
        let mut budget = OutputBudget { left: 10 };
        assert_eq!(budget.take(4), 4);
        assert_eq!(budget.take(10), 6);
        assert_eq!(budget.take(1), 0);
    }
}
