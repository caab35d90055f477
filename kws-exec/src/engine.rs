//! `ExecEngine`: the public face of the code-execution service on Docker.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bollard::Docker;
use kws_core::{DnsLabel, JobId, OwnerId};
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::AbortHandle,
};

use crate::{
    config::{ExecConfig, JobRunner},
    docker_exec::EventWatch,
    error::{ConfigError, SubmitError},
    journal::{JobEvents, JobSnapshot, Journal},
    limits::Limits,
    pool::PoolStatus,
    queue::{JobQueue, JobRequest, MemoryJobQueue},
    rate::RateLimiter,
    sandbox::Sandboxes,
    scheduler::{Message, Scheduler},
};

/// An error starting or stopping the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Docker refused or failed a request.
    #[error("docker: {what}: {source}")]
    Docker {
        /// What the engine was doing.
        what: String,
        /// Docker's error.
        source: bollard::errors::Error,
    },
    /// A pool could not be filled.
    #[error("the {language} pool could not be filled: {error}")]
    PoolFill {
        /// The language.
        language: DnsLabel,
        /// Why.
        error: String,
    },
    /// Something did not happen in time.
    #[error("{what} did not happen within {limit:?}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// How long.
        limit: Duration,
    },
}

/// What the scheduler and the workers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ExecConfig,
    pub(crate) sandboxes: Sandboxes,
    /// Docker's events, followed only for the `docker exec` runner.
    pub(crate) watch: Option<EventWatch>,
    pub(crate) journal: Journal,
    pub(crate) queue: Arc<dyn JobQueue>,
    pub(crate) closed: AtomicBool,
}

/// Runs untrusted code in warm, hardened Docker containers.
///
/// # Contract
/// - `submit` returns a job id at once (after validation, the user's rate limit and the
///   language queue's bound); the job's events (`events`) are then `Queued`, `Started`,
///   output, and exactly one terminal event.
/// - Each language keeps `pool_size` warm sandboxes; at most `max_concurrent` jobs run at once;
///   jobs of a language start in submission order.
/// - A job's wall time and output are enforced (by its sandbox's supervisor, or by killing the
///   sandbox with the `docker exec` runner). A sandbox is reused only when no process of the
///   job is left and every writable path was wiped; otherwise it is removed and the pool
///   refills in the background.
/// - With the supervisor runner, a job's terminal event is recorded only once no process of the
///   job is left (the supervisor reaped them, the container's cgroup holds only the
///   supervisor); `Exited` comes when the job's main process ends, with its `wall_ms`.
/// - `shutdown` removes every container of the engine; without it, containers stay until
///   someone removes them by the `kws.exec.engine` label.
#[derive(Debug)]
pub struct ExecEngine {
    shared: Arc<Shared>,
    outbox: mpsc::UnboundedSender<Message>,
    status: watch::Receiver<BTreeMap<DnsLabel, PoolStatus>>,
    rate: Mutex<RateLimiter>,
    follower: Option<AbortHandle>,
}

/// How long `start` waits for the pools to fill.
const FILL_LIMIT: Duration = Duration::from_secs(120);

impl ExecEngine {
    /// Connects to the Docker engine at `DOCKER_HOST` (or the default socket) and starts an
    /// engine there with the in-process job queue.
    pub async fn start_local(config: ExecConfig) -> Result<Self, ExecError> {
        let docker = kws_docker::connect()
            .await
            .map_err(|source| ExecError::Docker { what: "connecting".to_owned(), source })?;
        Self::start(docker, config).await
    }

    /// Starts an engine with the in-process job queue and waits until every pool is warm.
    pub async fn start(docker: Docker, config: ExecConfig) -> Result<Self, ExecError> {
        let queue = Arc::new(MemoryJobQueue::new(config.queue_capacity));
        Self::with_queue(docker, config, queue).await
    }

    /// Starts an engine on the given job queue and waits until every pool is warm.
    pub async fn with_queue(
        docker: Docker,
        config: ExecConfig,
        queue: Arc<dyn JobQueue>,
    ) -> Result<Self, ExecError> {
        config.validate()?;
        let engine_id = JobId::new().to_string();
        let engine_id = engine_id[engine_id.len() - 12..].to_owned();
        // The engine's architecture picks the sandboxes' seccomp profile.
        let info = docker.info().await.map_err(|source| ExecError::Docker {
            what: "reading the engine's architecture".to_owned(),
            source,
        })?;
        let arch = info.architecture.as_deref();
        let sandboxes = Sandboxes::new(docker.clone(), engine_id, &config, arch);
        let (watch, follower) = match config.runner {
            JobRunner::DockerExec => {
                let (watch, follower) = EventWatch::start(docker, sandboxes.engine_filter());
                (Some(watch), Some(follower))
            }
            JobRunner::Supervisor => (None, None),
        };
        let shared = Arc::new(Shared {
            journal: Journal::new(config.retention),
            config,
            sandboxes,
            watch,
            queue,
            closed: AtomicBool::new(false),
        });
        let rate = Mutex::new(RateLimiter::new(shared.config.rate));
        let (status_tx, status) = watch::channel(BTreeMap::new());
        let outbox = Scheduler::start(shared.clone(), status_tx);
        let engine = Self { shared, outbox, status, rate, follower };
        if let Err(err) = engine.wait_until_full(FILL_LIMIT).await {
            engine.shutdown().await?;
            return Err(err);
        }
        Ok(engine)
    }

    /// The id in this engine's container names and `kws.exec.engine` label.
    pub fn engine_id(&self) -> &str {
        &self.shared.sandboxes.engine
    }

    /// Accepts a job and returns its id; the job runs when a sandbox of its language is free.
    ///
    /// Refused (nothing queued) when the language is unknown, the source or stdin is too long
    /// or holds a NUL byte, a limit is out of range, the user is over their rate limit
    /// (`RateLimited`), or the language's queue is full (`Busy`).
    pub async fn submit(
        &self,
        user: &OwnerId,
        language: &DnsLabel,
        source: &str,
        stdin: &str,
        limits: Limits,
    ) -> Result<JobId, SubmitError> {
        let config = &self.shared.config;
        if config.languages.get(language).is_none() {
            return Err(SubmitError::UnknownLanguage(language.clone()));
        }
        check_input("source", source, 1, config.max_source_bytes)?;
        check_input("stdin", stdin, 0, config.max_stdin_bytes)?;
        limits.validate()?;
        self.rate
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .try_take(user, Instant::now())
            .map_err(|retry_after| SubmitError::RateLimited { user: user.clone(), retry_after })?;
        let id = JobId::new();
        let job = JobRequest {
            id,
            user: user.clone(),
            language: language.clone(),
            source: source.to_owned(),
            stdin: stdin.to_owned(),
            limits,
        };
        let (reply, answer) = oneshot::channel();
        self.outbox.send(Message::Submit { job, reply }).map_err(|_| SubmitError::ShutDown)?;
        answer.await.map_err(|_| SubmitError::ShutDown)??;
        Ok(id)
    }

    /// The job's events from the first, then live ones; the stream ends after the terminal
    /// event. `None` for an unknown job or one past its retention.
    pub fn events(&self, job: JobId) -> Option<JobEvents> {
        self.shared.journal.subscribe(job)
    }

    /// The job's events so far (its result, once it has ended).
    pub fn result(&self, job: JobId) -> Option<JobSnapshot> {
        self.shared.journal.snapshot(job)
    }

    /// Every pool's state.
    pub fn pools(&self) -> BTreeMap<DnsLabel, PoolStatus> {
        self.status.borrow().clone()
    }

    /// Waits until every pool is idle and full (all containers warm, nothing queued).
    pub async fn wait_until_full(&self, limit: Duration) -> Result<(), ExecError> {
        let mut status = self.status.clone();
        let wait = async {
            loop {
                {
                    let pools = status.borrow_and_update();
                    if !pools.is_empty() && pools.values().all(PoolStatus::is_full) {
                        return Ok(());
                    }
                    let broken = pools.iter().find(|(_, p)| {
                        p.ready + p.busy == 0 && p.last_error.is_some() && p.reused + p.retired == 0
                    });
                    if let Some((language, pool)) = broken {
                        return Err(ExecError::PoolFill {
                            language: language.clone(),
                            error: pool.last_error.clone().unwrap_or_default(),
                        });
                    }
                }
                if status.changed().await.is_err() {
                    return Err(ExecError::Timeout { what: "the scheduler", limit });
                }
            }
        };
        tokio::time::timeout(limit, wait)
            .await
            .map_err(|_| ExecError::Timeout { what: "filling the pools", limit })?
    }

    /// Stops the engine: queued jobs fail, running ones are killed, and every container of the
    /// engine is removed.
    pub async fn shutdown(self) -> Result<(), ExecError> {
        self.close().await
    }

    /// [`ExecEngine::shutdown`] through a shared reference (an engine behind an `Arc`): the
    /// engine takes no job after it; calling it again removes nothing more.
    pub async fn close(&self) -> Result<(), ExecError> {
        self.shared.closed.store(true, Ordering::SeqCst);
        let (reply, done) = oneshot::channel();
        if self.outbox.send(Message::Close { reply }).is_ok() {
            let _ = done.await;
        }
        self.remove_all().await?;
        let mut status = self.status.clone();
        let settled = async {
            while !status.borrow_and_update().values().all(|p| p.busy == 0 && p.starting == 0) {
                if status.changed().await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(30), settled).await;
        self.remove_all().await?;
        if let Some(follower) = &self.follower {
            follower.abort();
        }
        Ok(())
    }

    /// Removes every container carrying this engine's label, and waits until Docker lists none.
    async fn remove_all(&self) -> Result<(), ExecError> {
        let sandboxes = &self.shared.sandboxes;
        let limit = Duration::from_secs(30);
        kws_docker::remove_labelled(&sandboxes.docker, &sandboxes.engine_filter(), limit)
            .await
            .map_err(|err| match err {
                kws_docker::RemoveError::Engine { what, source } => {
                    ExecError::Docker { what, source }
                }
                _ => ExecError::Timeout { what: "removing the sandboxes", limit },
            })
    }
}

impl Drop for ExecEngine {
    /// Stops following Docker's events. Containers stay unless `shutdown` ran.
    fn drop(&mut self) {
        if let Some(follower) = &self.follower {
            follower.abort();
        }
    }
}

fn check_input(what: &'static str, text: &str, min: usize, max: usize) -> Result<(), SubmitError> {
    let why = if text.len() < min {
        format!("it is empty; at least {min} byte is needed")
    } else if text.len() > max {
        format!("{} bytes is more than the {max} allowed", text.len())
    } else if let Some(at) = text.find('\0') {
        format!("it holds a NUL byte at offset {at}")
    } else {
        return Ok(());
    };
    Err(SubmitError::Input { what, why })
}
