//! The supervisor runner ([`JobRunner::Supervisor`](crate::JobRunner), the default): the
//! sandbox's process 1 is `kws-exec-supervisor` (see that crate for what it guarantees), and
//! the engine speaks its protocol over the container's attached stdio. A job costs one frame in
//! and its output and end frames out: no `docker exec`, no Docker event, no request.
//!
//! The engine trusts nothing it cannot check: it retires the sandbox (and the pool refills)
//! when the supervisor reports anything wrong, breaks the protocol, stops answering, ends, or
//! when the container's cgroup, read from outside, holds anything but the supervisor after a
//! job.

mod run;

pub(crate) use run::SupervisedRun;

use std::{fmt, pin::Pin, sync::Mutex, time::Duration};

use bollard::{Docker, container::LogOutput, query_parameters::AttachContainerOptionsBuilder};
use futures::StreamExt;
use kws_exec_supervisor::protocol::{FrameBuffer, Report, Request, Setup};
use tokio::{
    io::{AsyncWrite, AsyncWriteExt},
    sync::mpsc,
    task::AbortHandle,
};

use crate::{
    language::Language,
    sandbox::{BASE_ENV, JOB_ID, RESIDENT_ID, SUPERVISOR_PATH, WORK_DIR, WRITABLE},
};

/// Called once when a supervisor's channel ends by itself (the engine did not close it), with
/// the container's id and why: the scheduler retires the sandbox if it is waiting in the pool.
pub(crate) type Lost = Box<dyn FnOnce(String, String) + Send>;

/// What the reader task passes on: a report, or why the channel ended.
pub(crate) type Received = Result<Report, String>;

/// The engine's end of one supervisor's channel.
pub(crate) struct SupervisorLink {
    /// The container's stdin. Behind a mutex only so a `Sandbox` is `Sync`.
    input: Mutex<Option<Pin<Box<dyn AsyncWrite + Send>>>>,
    /// Whether the language has a warm command: the next job's process is then prepared.
    warm: bool,
    /// Reports as the reader task decodes them; after an `Err`, nothing.
    reports: mpsc::UnboundedReceiver<Received>,
    reader: AbortHandle,
}

impl fmt::Debug for SupervisorLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorLink").finish_non_exhaustive()
    }
}

impl Drop for SupervisorLink {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl SupervisorLink {
    /// Sends one request.
    pub(crate) async fn send(&mut self, request: &Request) -> Result<(), String> {
        let taken = self.input.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut input) = taken else {
            return Err("the channel to the supervisor is closed".to_owned());
        };
        let frame = request.encode();
        let sent = async {
            input.write_all(&frame).await?;
            input.flush().await
        };
        match sent.await {
            Ok(()) => {
                *self.input.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(input);
                Ok(())
            }
            Err(e) => Err(format!("writing to the supervisor: {e}")),
        }
    }

    /// Tells the supervisor that the sandbox was proven clean from outside: for a language with
    /// a warm command, it starts the next job's process now (nothing otherwise). Call it only
    /// after that check, and once per job.
    pub(crate) async fn proven_clean(&mut self) -> Result<(), String> {
        if !self.warm {
            return Ok(());
        }
        self.send(&Request::Prepare).await
    }

    /// The next report; `None` once the channel has ended and its reason was returned.
    pub(crate) async fn receive(&mut self) -> Option<Received> {
        self.reports.recv().await
    }
}

/// How long a fresh sandbox's supervisor may take to set up, wipe and say `Ready`.
const READY_LIMIT: Duration = Duration::from_secs(10);
/// How long the supervisor may take to kill and reap a job's processes.
pub(crate) const KILL_LIMIT: Duration = Duration::from_secs(2);
/// How long the supervisor may take to wipe the writable paths.
pub(crate) const WIPE_LIMIT: Duration = Duration::from_secs(5);

/// What the supervisor is told about the language: its commands, environment, users and paths.
fn setup(language: &Language) -> Setup {
    let env = BASE_ENV.iter().map(|s| (*s).to_owned()).chain(language.env.iter().cloned());
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Setup {
        job_uid: JOB_ID,
        job_gid: JOB_ID,
        supervisor_uid: RESIDENT_ID,
        supervisor_gid: RESIDENT_ID,
        work_dir: WORK_DIR.to_owned(),
        source_file: language.source_file.clone(),
        compile: language.compile.clone(),
        run: language.run.clone(),
        warm: language.warm.clone(),
        env: env.collect(),
        writable: WRITABLE.iter().map(|s| (*s).to_owned()).collect(),
        kill_limit_ms: ms(KILL_LIMIT),
        wipe_limit_ms: ms(WIPE_LIMIT),
    }
}

/// Attaches to the created container `id`, starts it, sends the setup and waits for `Ready`.
pub(crate) async fn start(
    docker: &Docker,
    id: &str,
    language: &Language,
    lost: Lost,
) -> Result<SupervisorLink, String> {
    // Attached before the start, so no byte of the supervisor's is missed.
    let options = AttachContainerOptionsBuilder::default()
        .stdin(true)
        .stdout(true)
        .stderr(true)
        .stream(true)
        .logs(false)
        .build();
    let attached = docker
        .attach_container(id, Some(options))
        .await
        .map_err(|e| format!("attaching to the supervisor: {e}"))?;
    docker
        .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
        .await
        .map_err(|e| {
            format!(
                "starting: {e} (the image needs kws-exec-supervisor at {SUPERVISOR_PATH}, as \
                 scripts/images puts it; JobRunner::DockerExec runs without it)"
            )
        })?;
    let (tx, reports) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_reports(attached.output, tx, id.to_owned(), lost));
    let mut link = SupervisorLink {
        input: Mutex::new(Some(attached.input)),
        warm: language.warm.is_some(),
        reports,
        reader: reader.abort_handle(),
    };
    link.send(&Request::Setup(setup(language))).await?;
    let ready = tokio::time::timeout(READY_LIMIT, link.receive()).await;
    match ready {
        Ok(Some(Ok(Report::Ready))) => Ok(link),
        Ok(Some(Ok(Report::Fault(why)))) => Err(format!("the supervisor refused: {why}")),
        Ok(Some(Ok(other))) => Err(format!("the supervisor said {other:?} instead of Ready")),
        Ok(Some(Err(why))) => Err(format!(
            "the supervisor ended before it was ready: {}",
            ended(docker, id, why).await
        )),
        Ok(None) => Err("the supervisor's channel ended before it was ready".to_owned()),
        Err(_) => Err(format!("the supervisor was not ready within {READY_LIMIT:?}")),
    }
}

/// Why a supervisor's channel ended, with what Docker says of its container.
pub(crate) async fn ended(docker: &Docker, id: &str, why: impl fmt::Display) -> String {
    let inspected = docker
        .inspect_container(id, None::<bollard::query_parameters::InspectContainerOptions>)
        .await;
    let state = inspected.ok().and_then(|c| c.state);
    match state {
        Some(s) if s.running == Some(true) => format!("{why} (the container still runs)"),
        Some(s) => {
            let mut said = format!("{why}; the container stopped");
            if let Some(code) = s.exit_code {
                said.push_str(&format!(" with exit code {code}"));
            }
            if s.oom_killed == Some(true) {
                said.push_str(", killed for memory");
            }
            if let Some(error) = s.error.filter(|e| !e.is_empty()) {
                said.push_str(&format!(": {error}"));
            }
            said
        }
        None => format!("{why}; the container is gone"),
    }
}

/// The reader task: turns the attached output into reports until it ends. What the supervisor
/// writes on stderr is logged, not trusted.
async fn read_reports(
    mut output: Pin<
        Box<dyn futures::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
    reports: mpsc::UnboundedSender<Received>,
    id: String,
    lost: Lost,
) {
    let mut buffer = FrameBuffer::new();
    let why = loop {
        match output.next().await {
            Some(Ok(LogOutput::StdOut { message })) => {
                buffer.extend(&message);
                let mut broken = None;
                loop {
                    match buffer.next_report() {
                        Ok(Some(report)) => {
                            let _ = reports.send(Ok(report));
                        }
                        Ok(None) => break,
                        Err(e) => {
                            broken = Some(e.to_string());
                            break;
                        }
                    }
                }
                if let Some(why) = broken {
                    break why;
                }
            }
            Some(Ok(LogOutput::StdErr { message })) => {
                let text = String::from_utf8_lossy(&message);
                tracing::debug!(container = %id, "exec supervisor: {}", text.trim_end());
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => break format!("reading the supervisor's channel: {e}"),
            None => break "the supervisor's channel ended".to_owned(),
        }
    };
    let _ = reports.send(Err(why.clone()));
    lost(id, why);
}
