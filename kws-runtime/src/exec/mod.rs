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
//! capability dropped, no-new-privileges, programs as uid 1000 with a minimal environment, and
//! an idle process 1 under another uid. Wall time and output caps are enforced by killing the
//! container (Docker cannot kill an exec). After a job the container is reused only if no
//! process of the job is left and every writable path was wiped and checked empty; otherwise it
//! is removed and the pool refills in the background.

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
mod engine;
#[cfg(feature = "docker")]
mod run;
#[cfg(feature = "docker")]
mod sandbox;
#[cfg(feature = "docker")]
mod scheduler;
#[cfg(feature = "docker")]
mod watcher;

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
