//! What the runtime reports and takes besides the spec: keys, states, stats, logs, exec.

use std::{collections::BTreeMap, fmt, net::Ipv4Addr};

use chrono::{DateTime, Utc};
use kws_core::{InstanceId, OwnerId};

use crate::{ImageRef, InstanceSpec};

/// Names one instance: its owner and its name.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct InstanceKey {
    /// The owner.
    pub owner: OwnerId,
    /// The instance's name.
    pub name: InstanceId,
}

impl InstanceKey {
    /// The key of `owner`'s instance `name`.
    pub fn new(owner: OwnerId, name: InstanceId) -> Self {
        Self { owner, name }
    }

    /// The `NotFound` error for this key.
    pub fn not_found(&self) -> crate::Error {
        crate::Error::NotFound { owner: self.owner.clone(), instance: self.name.clone() }
    }
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// An instance's life state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum InstanceState {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Frozen.
    Paused,
    /// Being restarted by the engine.
    Restarting,
    /// Stopped, with its last exit code.
    Exited {
        /// The exit code of its main process.
        code: i64,
    },
    /// Being removed.
    Removing,
    /// Failed beyond recovery.
    Dead,
}

/// The health check's verdict, when the image defines one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Health {
    /// Not yet decided.
    Starting,
    /// Passing.
    Healthy,
    /// Failing.
    Unhealthy,
}

/// What `inspect` and `list` report.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InstanceInfo {
    /// Owner and name.
    pub key: InstanceKey,
    /// The engine's id of the current container (changes on redeploy).
    pub container_id: String,
    /// The image it runs.
    pub image: ImageRef,
    /// Its life state.
    pub state: InstanceState,
    /// Its health, when the image has a health check.
    pub health: Option<Health>,
    /// When it last started.
    pub started_at: Option<DateTime<Utc>>,
    /// Its address on its owner's network (the allocator's lease).
    pub address: Ipv4Addr,
    /// The IDE's port.
    pub ide_port: u16,
    /// The apps' ports.
    pub app_ports: Vec<u16>,
    /// The workspace volume's name.
    pub volume: String,
    /// The spec it was made from (after any redeploy).
    pub spec: InstanceSpec,
}

/// A sample of an instance's use of resources.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InstanceStats {
    /// CPU use over the sampling interval, 100 per fully used CPU.
    pub cpu_percent: f64,
    /// Memory in use, page cache excluded.
    pub memory_bytes: u64,
    /// The memory limit.
    pub memory_limit_bytes: u64,
    /// Bytes received over all networks.
    pub rx_bytes: u64,
    /// Bytes sent over all networks.
    pub tx_bytes: u64,
    /// Processes and threads now.
    pub pids: u64,
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LogSource {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of an instance's output, without its line end.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    /// Where it came from.
    pub source: LogSource,
    /// The text (invalid UTF-8 replaced).
    pub text: String,
}

/// What `logs` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct LogOptions {
    /// Keep the stream open and yield new lines as they are written.
    pub follow: bool,
    /// Only the last this many lines of the past output (`None`: all of it).
    pub tail: Option<u32>,
}

/// A command to run inside a running instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExecRequest {
    /// Program and arguments.
    pub cmd: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// The working directory (default: the workspace).
    pub workdir: Option<String>,
    /// Output beyond this many bytes per stream is dropped (and `truncated` set).
    pub max_output_bytes: usize,
}

impl ExecRequest {
    /// Runs `cmd` with no extra environment, in the workspace, keeping up to 1 MiB per stream.
    pub fn new<S: Into<String>>(cmd: impl IntoIterator<Item = S>) -> Self {
        Self {
            cmd: cmd.into_iter().map(Into::into).collect(),
            env: BTreeMap::new(),
            workdir: None,
            max_output_bytes: 1024 * 1024,
        }
    }
}

/// What a command run by `exec` produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExecOutput {
    /// Its exit code.
    pub exit_code: i64,
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: Vec<u8>,
    /// Whether output beyond `max_output_bytes` was dropped.
    pub truncated: bool,
}

impl ExecOutput {
    /// Standard output as text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// What `redeploy` changes; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Redeploy {
    /// A new image.
    pub image: Option<ImageRef>,
    /// A new environment (replaces the whole environment).
    pub env: Option<BTreeMap<String, String>>,
    /// A new command (`Some(None)`: the image's).
    pub command: Option<Option<Vec<String>>>,
}

impl Redeploy {
    /// The spec after this change.
    pub fn apply(&self, mut spec: InstanceSpec) -> InstanceSpec {
        if let Some(image) = &self.image {
            spec.image = Some(image.clone());
        }
        if let Some(env) = &self.env {
            spec.env = env.clone();
        }
        if let Some(command) = &self.command {
            spec.command = command.clone();
        }
        spec
    }
}

/// What `remove` does with the workspace volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum VolumePolicy {
    /// Keep it: an instance created again under the same name finds its files.
    Keep,
    /// Delete it with the instance.
    Delete,
}
