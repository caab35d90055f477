//! kws-exec: the code-execution engine. Users submit code and watch its output live, while
//! hostile code stays inside its sandbox.
//!
//! `submit` returns a [`JobId`](kws_core::JobId) at once; the job goes to its language's
//! bounded FIFO queue ([`JobQueue`]); an event-driven scheduler hands it to a warm sandbox
//! container of that language's pool; its output streams back as [`JobEvent`]s that any number
//! of subscribers can follow, from the first event, while it runs and for a retention period
//! after.
//!
//! Sandboxes (Docker, feature `docker`): no network, read-only root, size-capped tmpfs for the
//! work dir, /tmp, /var/tmp and /dev/shm, memory (no swap), pids and CPU limits, every
//! capability dropped (but the supervisor's three), no-new-privileges, a seccomp allowlist of
//! the engine's own for the native architecture only (stricter than Docker's default: no
//! `ptrace`, no `process_vm_*`), programs as uid 1000 with a minimal environment, and a
//! long-lived process 1 under another uid that a job can neither signal, trace nor read.
//!
//! What starts the jobs is the [`JobRunner`]:
//! - [`JobRunner::Supervisor`] (the default): process 1 is the resident supervisor
//!   (the `kws-exec-supervisor` crate), which takes each job over the container's attached
//!   stdio, starts it as the job's user (for a language with a warm command, such as python3,
//!   that process is started before the job comes, once the sandbox is proven clean, and
//!   only gets the source), streams its output, enforces its wall time and output
//!   cap, kills and reaps every process of it when its main process ends, wipes every writable
//!   path, checks the sandbox, and says it is ready again. The engine checks from outside, by
//!   the container's cgroup, that only the supervisor is left before it records the job's end,
//!   and retires the sandbox (the pool refills) when anything is wrong or the supervisor
//!   stops answering.
//! - [`JobRunner::DockerExec`], the fallback: process 1 is an idle `sleep`; each job's process
//!   is started ahead by a `docker exec`, wall time and output caps are enforced by killing
//!   the container, and a sandbox is reused only once Docker shows no process of the job left.

mod config;
mod error;
mod event;
// Without Docker nothing drives the journal and the limiter yet; they stay tested.
#[cfg_attr(not(feature = "docker"), allow(dead_code))]
mod journal;
mod language;
mod limits;
mod queue;
#[cfg_attr(not(feature = "docker"), allow(dead_code))]
mod rate;

#[cfg(feature = "docker")]
mod docker_exec;
#[cfg(feature = "docker")]
mod engine;
mod pool;
#[cfg(feature = "docker")]
mod sandbox;
#[cfg(feature = "docker")]
mod scheduler;
#[cfg(feature = "docker")]
mod seccomp;
#[cfg(feature = "docker")]
mod supervised;
#[cfg(feature = "docker")]
mod worker;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use config::{ExecConfig, JobRunner};
#[cfg(feature = "docker")]
pub use engine::{ExecEngine, ExecError};
pub use error::{ConfigError, QueueError, SubmitError};
pub use event::JobEvent;
pub use journal::{JobEvents, JobSnapshot};
pub use language::{Language, Languages, PYTHON_WARM_LOADER};
pub use limits::{Limits, SandboxLimits};
pub use pool::PoolStatus;
pub use queue::{Delivery, Enqueued, JobQueue, JobRequest, MemoryJobQueue};
pub use rate::RateLimit;
#[cfg(feature = "docker")]
pub use sandbox::{ENGINE_LABEL, EXEC_LABEL, LANGUAGE_LABEL, SUPERVISOR_PATH};
