//! The crate's error.

use kws_core::{InstanceId, OwnerId, ParseError};

/// Why a runtime operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No instance of that owner and name (or the container of that name is not managed by kws).
    #[error("instance {owner}/{instance} not found")]
    NotFound {
        /// The owner.
        owner: OwnerId,
        /// The instance.
        instance: InstanceId,
    },
    /// `create` of an instance that exists.
    #[error("instance {owner}/{instance} already exists")]
    AlreadyExists {
        /// The owner.
        owner: OwnerId,
        /// The instance.
        instance: InstanceId,
    },
    /// A name that is not a valid owner or instance id.
    #[error(transparent)]
    InvalidName(#[from] ParseError),
    /// A field of a spec or request has a value out of range or of the wrong form.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidSpec {
        /// The field, e.g. `"resources.memory_bytes"`.
        field: &'static str,
        /// The offending value, escaped.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// The spec asks for something the runtime never grants.
    #[error("refused: the spec asks for {0}")]
    Forbidden(Forbidden),
    /// The image is not present on the engine (nothing is pulled).
    #[error("image {0} not found on the engine")]
    ImageNotFound(String),
    /// The operation needs a running instance.
    #[error("instance {owner}/{instance} is not running")]
    NotRunning {
        /// The owner.
        owner: OwnerId,
        /// The instance.
        instance: InstanceId,
    },
    /// A new container (of `redeploy`) did not keep running; the old one was left as it was.
    #[error("instance {owner}/{instance} did not start: {reason}")]
    StartFailed {
        /// The owner.
        owner: OwnerId,
        /// The instance.
        instance: InstanceId,
        /// The engine's state or error, and the last log lines.
        reason: String,
    },
    /// An object of the runtime's name exists but does not carry its labels; it is not touched.
    #[error("{0} exists but is not managed by kws; left untouched")]
    Unmanaged(String),
    /// The object is still in use (a network with instances attached).
    #[error("{0} is still in use")]
    InUse(String),
    /// Every owner subnet of the configured range is taken.
    #[error("no free /{prefix_len} subnet left in {range} for owner {owner}")]
    NoSubnet {
        /// The owner.
        owner: OwnerId,
        /// The configured range.
        range: ipnet::Ipv4Net,
        /// The configured prefix length of an owner subnet.
        prefix_len: u8,
    },
    /// The address allocator failed.
    #[error("address allocator: {0}")]
    Address(#[from] kws_ipam::Error),
    /// The container engine failed.
    #[error("{backend} backend: {source}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// What it said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    pub(crate) fn invalid(
        field: &'static str,
        value: impl std::fmt::Debug,
        reason: impl Into<String>,
    ) -> Self {
        let mut value = format!("{value:?}");
        if value.len() > 120 {
            let cut = (0..=117).rev().find(|i| value.is_char_boundary(*i)).unwrap_or(0);
            value.truncate(cut);
            value.push('…');
        }
        Self::InvalidSpec { field, value, reason: reason.into() }
    }
}

/// What a spec may not ask for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Forbidden {
    /// Privileged mode.
    #[error("privileged mode")]
    Privileged,
    /// The host's network namespace.
    #[error("the host network")]
    HostNetwork,
    /// The host's PID namespace.
    #[error("the host PID namespace")]
    HostPid,
    /// A bind mount of a host path.
    #[error("a mount of host path {0:?}")]
    HostPathMount(String),
}
