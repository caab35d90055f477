//! The Docker backend's configuration.

use std::{collections::BTreeMap, time::Duration};

use ipnet::Ipv4Net;

use crate::{Error, ImageRef, Resources, UserId};

/// The browser IDE every instance runs unless its spec names another image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdeConfig {
    /// Its image (code-server or openvscode-server in production).
    pub image: ImageRef,
    /// The port it listens on inside the container.
    pub port: u16,
}

/// A capability an instance may get back after all are dropped: only the harmless few a
/// non-root workload may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Capability {
    /// Change file owners.
    Chown,
    /// Bypass file permission checks.
    DacOverride,
    /// Bypass owner checks on files.
    Fowner,
    /// Keep set-id bits on modified files.
    Fsetid,
    /// Signal any process of the container.
    Kill,
    /// Bind ports below 1024.
    NetBindService,
    /// Change group ids.
    Setgid,
    /// Change user ids.
    Setuid,
}

impl Capability {
    /// The engine's name of the capability.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chown => "CHOWN",
            Self::DacOverride => "DAC_OVERRIDE",
            Self::Fowner => "FOWNER",
            Self::Fsetid => "FSETID",
            Self::Kill => "KILL",
            Self::NetBindService => "NET_BIND_SERVICE",
            Self::Setgid => "SETGID",
            Self::Setuid => "SETUID",
        }
    }
}

/// How the Docker backend runs instances.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// The IDE image and port.
    pub ide: IdeConfig,
    /// The range owner subnets are carved from.
    pub owner_range: Ipv4Net,
    /// The prefix length of one owner's subnet (at most 29).
    pub owner_prefix_len: u8,
    /// Limits of a spec that names none.
    pub default_resources: Resources,
    /// The largest limits a spec may ask for.
    pub max_resources: Resources,
    /// The user an instance runs as when neither its spec nor its image names a non-root one.
    pub default_user: UserId,
    /// Capabilities given back after all are dropped.
    pub cap_add: Vec<Capability>,
    /// How long `stop` waits before it kills.
    pub stop_timeout: Duration,
    /// How long a new container of `redeploy` must keep running before the old one goes.
    pub redeploy_settle: Duration,
    /// Labels put on every container, network and volume beside the runtime's own
    /// (e.g. `kws.test=1`); keys may not start with `kws.` unless they are `kws.test…`.
    pub extra_labels: BTreeMap<String, String>,
}

impl DockerConfig {
    /// code-server on 8080, owners in `10.213.0.0/16` by /24, 1 GiB / 1 CPU / 512 processes by
    /// default and at most 64 GiB / 64 CPUs / 32768 processes, user 1000:1000, no capability
    /// added back, 10 s stop timeout, 500 ms redeploy settle time.
    pub fn new(ide: IdeConfig) -> Self {
        Self {
            ide,
            owner_range: Ipv4Net::new(std::net::Ipv4Addr::new(10, 213, 0, 0), 16)
                .unwrap_or_default(),
            owner_prefix_len: 24,
            default_resources: Resources { memory_bytes: 1024 * 1024 * 1024, cpus: 1.0, pids: 512 },
            max_resources: Resources {
                memory_bytes: 64 * 1024 * 1024 * 1024,
                cpus: 64.0,
                pids: 32768,
            },
            default_user: UserId { uid: 1000, gid: 1000 },
            cap_add: Vec::new(),
            stop_timeout: Duration::from_secs(10),
            redeploy_settle: Duration::from_millis(500),
            extra_labels: BTreeMap::new(),
        }
    }

    /// Checks the configuration as a whole.
    pub fn validate(&self) -> Result<(), Error> {
        if self.ide.port == 0 {
            return Err(Error::invalid("ide.port", self.ide.port, "1 to 65535"));
        }
        let len = self.owner_prefix_len;
        if len < self.owner_range.prefix_len() || len > 29 {
            let why = format!("from /{} (the range's) to /29", self.owner_range.prefix_len());
            return Err(Error::invalid("owner_prefix_len", len, why));
        }
        self.default_resources.validate(&self.max_resources)?;
        if self.stop_timeout > Duration::from_secs(3600) {
            return Err(Error::invalid("stop_timeout", self.stop_timeout, "at most one hour"));
        }
        for (key, value) in &self.extra_labels {
            let reserved = key.starts_with("kws.") && !key.starts_with("kws.test");
            let clean = |s: &str| !s.is_empty() && !s.chars().any(char::is_control);
            if reserved || !clean(key) || value.chars().any(char::is_control) {
                return Err(Error::invalid("extra label", key, "no control characters, not kws.*"));
            }
        }
        Ok(())
    }
}
