//! kws-runtime runs users' instances as hardened Docker containers with owner networks,
//! workspaces, logs, stats and a browser IDE, behind the `Runtime` trait. (Untrusted code runs in
//! kws-exec's sandboxes, not here.)

mod error;
mod fleet;
mod instance;
mod memory;
mod spec;

#[cfg(feature = "docker")]
pub mod docker;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::{Error, Forbidden};
pub use fleet::{InstanceChange, InstanceEvent, InstanceEventStream, NetworkInfo, Purged};
pub use instance::{
    ExecOutput, ExecRequest, Health, InstanceInfo, InstanceKey, InstanceState, InstanceStats,
    LogLine, LogOptions, LogSource, Redeploy, VolumePolicy,
};
pub use memory::MemoryRuntime;
pub use spec::{
    HealthCheck, ImageRef, InstanceSpec, Mount, MountSource, Resources, UserId, WORKSPACE_PATH,
};

use std::{fmt::Debug, time::Duration};

use futures::stream::BoxStream;
use kws_core::OwnerId;

/// A stream of log lines; it ends when the instance stops (with `follow`) or at the end of the
/// past output (without).
pub type LogStream = BoxStream<'static, Result<LogLine, Error>>;

/// Runs users' instances.
///
/// # Contract
/// - An instance is named by its owner and name (`InstanceKey`); the engine's labels carry that
///   identity, so a new runtime over the same engine knows every instance (`list`), and objects
///   without the runtime's labels are never touched (they are `NotFound`).
/// - Every operation on an instance that does not exist fails with `NotFound`.
/// - `create` is atomic: on any error nothing is left behind (no container, network, volume or
///   address lease). An owner's network is created on its first instance; its address comes from
///   the address allocator and goes back to it on `remove`.
/// - Hardening holds for every instance: all capabilities dropped but a configured few,
///   no-new-privileges, memory and process limits, a non-root user unless the spec names one;
///   privileged mode, host namespaces and host path mounts are refused with `Forbidden`.
/// - `start` of a running instance and `stop` of a stopped one succeed and change nothing.
/// - `stop` asks the instance to end and kills it after the timeout.
/// - The workspace volume (at `WORKSPACE_PATH`) survives `stop`, `restart` and `redeploy`.
/// - `redeploy` keeps owner, name, workspace and address; the new container is started before
///   the old one is removed, and when the new one fails to start, exits, or (with a health check)
///   turns unhealthy, the old one is left running, the call fails with `StartFailed` (or
///   `ImageNotFound`) and nothing else changes.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync + Debug + 'static {
    /// Creates the instance (stopped). `AlreadyExists` when the owner has one of that name.
    async fn create(&self, spec: InstanceSpec) -> Result<InstanceInfo, Error>;

    /// Starts it (idempotent).
    async fn start(&self, key: &InstanceKey) -> Result<(), Error>;

    /// Stops it: a termination signal, then a kill after `timeout` (the configured one when
    /// `None`). Idempotent.
    async fn stop(&self, key: &InstanceKey, timeout: Option<Duration>) -> Result<(), Error>;

    /// Stops (gracefully) and starts it again.
    async fn restart(&self, key: &InstanceKey) -> Result<(), Error>;

    /// Replaces its container with one made from the changed spec, keeping its identity,
    /// workspace and address; the new container runs when this returns.
    async fn redeploy(&self, key: &InstanceKey, change: Redeploy) -> Result<InstanceInfo, Error>;

    /// Removes it (stopping it first), returns its address to the allocator, and keeps or
    /// deletes its workspace volume.
    async fn remove(&self, key: &InstanceKey, volume: VolumePolicy) -> Result<(), Error>;

    /// Its current state.
    async fn inspect(&self, key: &InstanceKey) -> Result<InstanceInfo, Error>;

    /// Every instance of `owner`, sorted by name.
    async fn list(&self, owner: &OwnerId) -> Result<Vec<InstanceInfo>, Error>;

    /// A sample of its resource use (`NotRunning` when stopped).
    async fn stats(&self, key: &InstanceKey) -> Result<InstanceStats, Error>;

    /// Its output, line by line; with `follow`, lines arrive as they are written.
    async fn logs(&self, key: &InstanceKey, options: LogOptions) -> Result<LogStream, Error>;

    /// Runs a command inside it (`NotRunning` when stopped) and returns its exit code and output.
    async fn exec(&self, key: &InstanceKey, request: ExecRequest) -> Result<ExecOutput, Error>;

    /// Every instance of every owner, sorted by key.
    async fn list_all(&self) -> Result<Vec<InstanceInfo>, Error>;

    /// Removes every trace of the instance that exists, whatever state an interrupted
    /// `create`, `redeploy` or `remove` (a crash in the middle) left it in: its container, a
    /// redeploy's half-made next container, its address leases, and the workspace volume when
    /// `volume` is `Delete`. Idempotent: a second call finds nothing (`Purged::default()`), and
    /// a missing instance is not an error. Objects without the runtime's labels stay untouched.
    async fn purge(&self, key: &InstanceKey, volume: VolumePolicy) -> Result<Purged, Error>;

    /// The owner networks the runtime manages, sorted by subnet.
    async fn networks(&self) -> Result<Vec<NetworkInfo>, Error>;

    /// Removes `owner`'s network when no instance is attached to it. `Ok(false)` when there
    /// was none; `InUse` while an instance (or anything else) is attached.
    async fn remove_network(&self, owner: &OwnerId) -> Result<bool, Error>;

    /// State changes of every instance, from now on.
    async fn watch(&self) -> Result<InstanceEventStream, Error>;

    /// Rebuilds what the runtime needs after a restart of its process (for the Docker backend:
    /// the address leases of running instances, and redeploys a crash interrupted), and returns
    /// every instance. Run it at start-up, before anything else uses the runtime.
    async fn recover(&self) -> Result<Vec<InstanceInfo>, Error> {
        self.list_all().await
    }
}
