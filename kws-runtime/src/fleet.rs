//! What a caller that keeps its own record of instances (the Platform) needs beyond one
//! instance's lifecycle: the owner networks, a feed of state changes, and a purge that takes
//! back whatever an interrupted create, redeploy or remove left.

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use ipnet::Ipv4Net;
use kws_core::{IfName, OwnerId};

use crate::{Error, InstanceKey, InstanceState};

/// An owner's network as the runtime has it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkInfo {
    /// The owner.
    pub owner: OwnerId,
    /// Its subnet.
    pub subnet: Ipv4Net,
    /// The host interface of its bridge, when the backend has one on this host (a host
    /// firewall isolates these bridges from each other).
    pub bridge: Option<IfName>,
}

/// A change of one instance's state, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceEvent {
    /// The instance.
    pub key: InstanceKey,
    /// What happened.
    pub change: InstanceChange,
    /// When the engine saw it.
    pub at: DateTime<Utc>,
}

/// What happened to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InstanceChange {
    /// Its container is now in this state.
    State(InstanceState),
    /// Its container is gone.
    Removed,
    /// The engine's health check changed its verdict; `inspect` has the new one.
    Health,
}

/// The feed of [`InstanceEvent`]s; it ends (or yields an error) when the engine connection
/// ends, and the caller then resubscribes and makes one full pass (`list_all`) to catch up.
pub type InstanceEventStream = BoxStream<'static, Result<InstanceEvent, Error>>;

/// What [`Runtime::purge`](crate::Runtime::purge) found and removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Containers removed (the instance's, and a redeploy's half-made next one).
    pub containers: usize,
    /// Address leases given back.
    pub leases: usize,
    /// Whether the workspace volume was deleted.
    pub volume: bool,
}

impl Purged {
    /// Whether anything of the instance existed.
    pub fn found_anything(&self) -> bool {
        self.containers + self.leases > 0 || self.volume
    }
}
