//! Instances: a container with a workspace, an IDE at `<name>.<domain>`, and app ports.

use std::{collections::BTreeMap, net::Ipv4Addr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::platform::store::{Kind, Resource};

/// Whether the user wants the instance running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Desired {
    /// Running; reconcile starts it when it stopped by itself.
    Running,
    /// Stopped.
    Stopped,
}

/// An instance's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceResources {
    /// CPU, in thousandths of a CPU.
    pub cpu_millis: u64,
    /// Memory, in MiB.
    pub memory_mb: u64,
}

/// What the user asked for, and what the platform assigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// The image; `None` runs the platform's IDE image.
    pub image: Option<String>,
    /// Its limits.
    pub resources: InstanceResources,
    /// Ports its apps listen on (publishable as apps).
    pub app_ports: Vec<u16>,
    /// Its environment.
    pub env: BTreeMap<String, String>,
    /// The command it runs instead of its image's.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Running or stopped.
    pub desired: Desired,
    /// Its address on the tenant's network, once created.
    pub address: Option<Ipv4Addr>,
    /// The port its IDE listens on, once created.
    pub ide_port: Option<u16>,
}

impl Resource for InstanceSpec {
    const KIND: Kind = Kind::Instance;
    type Status = InstanceStatus;
}

/// An instance's life state as observed (the engine's states, plus `missing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub enum RunState {
    /// Made, not started.
    Created,
    /// Running.
    Running,
    /// Frozen.
    Paused,
    /// Being restarted.
    Restarting,
    /// Stopped.
    Exited,
    /// Being removed.
    Removing,
    /// Failed beyond recovery.
    Dead,
    /// The store has it, the engine does not (reconcile makes it again).
    Missing,
}

impl RunState {
    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Created => "created",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Restarting => "restarting",
            RunState::Exited => "exited",
            RunState::Removing => "removing",
            RunState::Dead => "dead",
            RunState::Missing => "missing",
        }
    }

    /// Parses a state's name.
    pub fn parse(raw: &str) -> Option<Self> {
        [
            RunState::Created,
            RunState::Running,
            RunState::Paused,
            RunState::Restarting,
            RunState::Exited,
            RunState::Removing,
            RunState::Dead,
            RunState::Missing,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// What the engine reported of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// Its state.
    pub state: RunState,
    /// The exit code, when it exited.
    pub exit_code: Option<i64>,
    /// The health check's verdict (`starting`, `healthy`, `unhealthy`), when it has one.
    pub health: Option<String>,
    /// The engine's container id.
    pub container_id: Option<String>,
    /// When it last started.
    pub started_at: Option<DateTime<Utc>>,
}
