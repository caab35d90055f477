//! The code-execution engine: users submit code and watch its output live, while hostile code
//! stays inside its sandbox.
//!
//! `submit` returns a [`JobId`](kws_core::JobId) at once; the job goes to its language's
//! bounded FIFO queue ([`JobQueue`]); an event-driven scheduler hands it to a warm sandbox
//! container of that language's pool; its output streams back as [`JobEvent`]s that any number
//! of subscribers can follow, from the first event, while it runs and for a retention period
//! after.
//!
//! Sandboxes (Docker, feature `docker`): no network, read-only root, size-capped tmpfs for the
//! work dir, /tmp, /var/tmp and /dev/shm, memory (no swap), pids and CPU limits, every
//! capability dropped, no-new-privileges, a seccomp allowlist of the engine's own for the native
//! architecture only (stricter than Docker's default, and cheaper for runc to compile at every
//! exec), programs as uid 1000 with a minimal environment, and an idle process 1 under another
//! uid. Wall time and output caps are enforced by killing the
//! container (Docker cannot kill an exec), which also makes sure no pid is ever signalled after
//! it was reused.
//!
//! Between jobs: Docker lists the container's processes from outside (by its cgroup); unless
//! only process 1 is left, the container is removed and the pool refills in the background.
//! Otherwise the next job's process is started ahead ("armed"): it wipes every writable path,
//! checks each is empty and no System V IPC object is left, says `kws-ready`, and waits on its
//! stdin for the source line and the job's stdin. Nothing else runs in the sandbox then, so
//! nothing can tamper with it; a sandbox that fails the check is removed instead. A job then
//! costs a write and the interpreter's start, not a container or exec start.

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
mod cgroup;
#[cfg(feature = "docker")]
mod engine;
#[cfg(feature = "docker")]
mod run;
#[cfg(feature = "docker")]
mod sandbox;
#[cfg(feature = "docker")]
mod scheduler;
#[cfg(feature = "docker")]
mod script;
#[cfg(feature = "docker")]
mod seccomp;
#[cfg(feature = "docker")]
mod watcher;
#[cfg(feature = "docker")]
mod worker;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use config::ExecConfig;
#[cfg(feature = "docker")]
pub use engine::{ExecEngine, ExecError};
pub use error::{ConfigError, QueueError, SubmitError};
pub use event::JobEvent;
pub use journal::{JobEvents, JobSnapshot};
pub use language::{Language, Languages};
pub use limits::{Limits, SandboxLimits};
pub use queue::{Delivery, Enqueued, JobQueue, JobRequest, MemoryJobQueue};
pub use rate::RateLimit;
#[cfg(feature = "docker")]
pub use sandbox::{ENGINE_LABEL, EXEC_LABEL, LANGUAGE_LABEL};
#[cfg(feature = "docker")]
pub use scheduler::PoolStatus;
