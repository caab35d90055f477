//! What an instance is made of: `InstanceSpec`, its image, resources, user and mounts.

use std::{collections::BTreeMap, fmt, str::FromStr, time::Duration};

use kws_core::{InstanceId, OwnerId};

use crate::{Error, Forbidden};

/// Where every instance's workspace volume is mounted.
pub const WORKSPACE_PATH: &str = "/workspace";

/// An instance to create.
///
/// # Contract
/// `None` fields take the runtime's configured defaults (the IDE image and port, the default
/// resources, the non-root user). `validate` accepts a spec only when every field is in range;
/// `privileged`, `host_network`, `host_pid` and host path mounts are always refused.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InstanceSpec {
    /// The owner: names the network the instance joins.
    pub owner: OwnerId,
    /// The instance's name, unique per owner.
    pub name: InstanceId,
    /// The image; `None` is the configured IDE image.
    #[serde(default)]
    pub image: Option<ImageRef>,
    /// The command; `None` is the image's.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Environment variables. The Docker backend adds `KWS_IDE_PORT` (the IDE port, which the
    /// IDE image listens on); a value given here under that name is dropped.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The port the browser IDE listens on; `None` is the configured IDE port.
    #[serde(default)]
    pub ide_port: Option<u16>,
    /// Ports of apps the owner may publish.
    #[serde(default)]
    pub app_ports: Vec<u16>,
    /// Limits; `None` is the configured default.
    #[serde(default)]
    pub resources: Option<Resources>,
    /// The user to run as; `None` is the image's non-root user, else the configured one.
    #[serde(default)]
    pub user: Option<UserId>,
    /// Mount the root file system read-only (`/tmp` becomes a tmpfs).
    #[serde(default)]
    pub read_only_root: bool,
    /// More mounts beside the workspace.
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// A command whose success means the instance is healthy; `inspect` reports the verdict and
    /// `redeploy` waits for a healthy new container before it removes the old one.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// Privileged mode: always refused.
    #[serde(default)]
    pub privileged: bool,
    /// The host's network: always refused.
    #[serde(default)]
    pub host_network: bool,
    /// The host's PID namespace: always refused.
    #[serde(default)]
    pub host_pid: bool,
}

impl InstanceSpec {
    /// A spec of `owner`'s instance `name` with every default.
    pub fn new(owner: OwnerId, name: InstanceId) -> Self {
        Self {
            owner,
            name,
            image: None,
            command: None,
            env: BTreeMap::new(),
            ide_port: None,
            app_ports: Vec::new(),
            resources: None,
            user: None,
            read_only_root: false,
            mounts: Vec::new(),
            health_check: None,
            privileged: false,
            host_network: false,
            host_pid: false,
        }
    }

    /// Checks every field; `max` bounds the resources.
    pub fn validate(&self, max: &Resources) -> Result<(), Error> {
        if self.privileged {
            return Err(Error::Forbidden(Forbidden::Privileged));
        }
        if self.host_network {
            return Err(Error::Forbidden(Forbidden::HostNetwork));
        }
        if self.host_pid {
            return Err(Error::Forbidden(Forbidden::HostPid));
        }
        for mount in &self.mounts {
            mount.validate()?;
        }
        if let Some(command) = &self.command {
            check_command("command", command)?;
        }
        if let Some(check) = &self.health_check {
            check.validate()?;
        }
        check_env(&self.env)?;
        let mut ports: Vec<u16> = self.app_ports.clone();
        ports.extend(self.ide_port);
        for port in &ports {
            if *port == 0 {
                return Err(Error::invalid("ports", port, "1 to 65535"));
            }
        }
        ports.sort_unstable();
        if let Some(w) = ports.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::invalid("ports", w[0], "each port at most once (IDE and apps)"));
        }
        if let Some(resources) = &self.resources {
            resources.validate(max)?;
        }
        Ok(())
    }
}

/// Checks a command line: at least one argument, no NUL, bounded size.
pub(crate) fn check_command(field: &'static str, args: &[String]) -> Result<(), Error> {
    if args.is_empty() {
        return Err(Error::invalid(field, args, "at least the program"));
    }
    if args.len() > 1024 || args.iter().map(String::len).sum::<usize>() > 128 * 1024 {
        return Err(Error::invalid(field, args.len(), "at most 1024 arguments and 128 KiB"));
    }
    if let Some(bad) = args.iter().find(|a| a.contains('\0')) {
        return Err(Error::invalid(field, bad, "no NUL bytes"));
    }
    Ok(())
}

/// Checks environment variables: POSIX names, values without NUL, bounded size.
pub(crate) fn check_env(env: &BTreeMap<String, String>) -> Result<(), Error> {
    for (name, value) in env {
        let mut bytes = name.bytes();
        let head_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
        if !head_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') || name.len() > 255 {
            return Err(Error::invalid(
                "env name",
                name,
                "[A-Za-z_][A-Za-z0-9_]*, at most 255 bytes",
            ));
        }
        if value.contains('\0') || value.len() > 32 * 1024 {
            return Err(Error::invalid("env value", value, "no NUL bytes, at most 32 KiB"));
        }
    }
    Ok(())
}

/// Memory, CPU and process limits.
///
/// The fields are signed because the engine's are, and because `-1` means "unlimited" there:
/// a negative value is refused here rather than passed on.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    /// Memory limit in bytes (swap is not granted beyond it).
    pub memory_bytes: i64,
    /// CPUs (fractions allowed).
    pub cpus: f64,
    /// Most processes and threads at once.
    pub pids: i64,
}

impl Resources {
    /// The smallest memory limit the engine accepts (6 MiB).
    pub const MIN_MEMORY_BYTES: i64 = 6 * 1024 * 1024;
    /// The smallest CPU share.
    pub const MIN_CPUS: f64 = 0.01;
    /// The fewest processes an instance needs (init, a shell, a command).
    pub const MIN_PIDS: i64 = 4;

    /// Checks that every limit is positive, at least the minimum and at most `max`.
    pub fn validate(&self, max: &Resources) -> Result<(), Error> {
        let range = |lo: String, hi: String| format!("from {lo} to {hi}");
        if !(Self::MIN_MEMORY_BYTES..=max.memory_bytes).contains(&self.memory_bytes) {
            let why = range(Self::MIN_MEMORY_BYTES.to_string(), max.memory_bytes.to_string());
            return Err(Error::invalid("resources.memory_bytes", self.memory_bytes, why));
        }
        if !self.cpus.is_finite() || !(Self::MIN_CPUS..=max.cpus).contains(&self.cpus) {
            let why = range(Self::MIN_CPUS.to_string(), max.cpus.to_string());
            return Err(Error::invalid("resources.cpus", self.cpus, why));
        }
        if !(Self::MIN_PIDS..=max.pids).contains(&self.pids) {
            let why = range(Self::MIN_PIDS.to_string(), max.pids.to_string());
            return Err(Error::invalid("resources.pids", self.pids, why));
        }
        Ok(())
    }
}

/// A health check: `command` runs every `interval` inside the instance; exit code 0 is healthy,
/// and `retries` failures in a row (or runs longer than `timeout`) are unhealthy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HealthCheck {
    /// Program and arguments (no shell unless the program is one).
    pub command: Vec<String>,
    /// Time between runs, from 100 ms to one hour.
    pub interval: Duration,
    /// Longest run, from 100 ms to ten minutes.
    pub timeout: Duration,
    /// Failures in a row that make it unhealthy, 1 to 100.
    pub retries: u32,
}

impl HealthCheck {
    fn validate(&self) -> Result<(), Error> {
        check_command("health_check.command", &self.command)?;
        let ms = Duration::from_millis;
        if !(ms(100)..=Duration::from_secs(3600)).contains(&self.interval) {
            return Err(Error::invalid("health_check.interval", self.interval, "100 ms to 1 h"));
        }
        if !(ms(100)..=Duration::from_secs(600)).contains(&self.timeout) {
            return Err(Error::invalid("health_check.timeout", self.timeout, "100 ms to 10 min"));
        }
        if !(1..=100).contains(&self.retries) {
            return Err(Error::invalid("health_check.retries", self.retries, "1 to 100"));
        }
        Ok(())
    }
}

/// A numeric user and group to run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserId {
    /// The user id.
    pub uid: u32,
    /// The group id.
    pub gid: u32,
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

/// A mount beside the workspace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    /// The absolute path inside the container.
    pub target: String,
    /// What is mounted there.
    pub source: MountSource,
}

/// What a `Mount` mounts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum MountSource {
    /// A tmpfs of at most this many bytes.
    Tmpfs {
        /// The size limit.
        size_bytes: i64,
    },
    /// A path of the host: always refused.
    HostPath(String),
}

impl Mount {
    fn validate(&self) -> Result<(), Error> {
        if let MountSource::HostPath(path) = &self.source {
            return Err(Error::Forbidden(Forbidden::HostPathMount(
                path.escape_debug().to_string(),
            )));
        }
        let t = &self.target;
        let clean = t.starts_with('/')
            && t.len() > 1
            && t.len() <= 1024
            && !t.split('/').any(|part| part == ".." || part == ".")
            && !t.chars().any(|c| c.is_control() || c == ',' || c == ':');
        if !clean {
            return Err(Error::invalid(
                "mount target",
                t,
                "an absolute path without '..', ',', ':'",
            ));
        }
        if t.trim_end_matches('/') == WORKSPACE_PATH {
            return Err(Error::invalid("mount target", t, "the workspace path is taken"));
        }
        if let MountSource::Tmpfs { size_bytes } = self.source {
            if !(4096..=16 * 1024 * 1024 * 1024).contains(&size_bytes) {
                return Err(Error::invalid("tmpfs size", size_bytes, "from 4 KiB to 16 GiB"));
            }
        }
        Ok(())
    }
}

/// An image reference (`name[:tag][@digest]`), checked for the characters a reference may hold.
///
/// # Contract
/// 1 to 255 bytes of ASCII letters, digits and `. _ - / : @`, starting with a letter or digit,
/// without `..`; it is passed to the engine verbatim.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageRef(String);

impl ImageRef {
    /// Checks and wraps `raw`.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let ok = !raw.is_empty()
            && raw.len() <= 255
            && raw.starts_with(|c: char| c.is_ascii_alphanumeric())
            && !raw.contains("..")
            && raw.chars().all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Error::invalid("image", raw, "1 to 255 of [A-Za-z0-9._-/:@], no '..'"))
        }
    }

    /// The reference.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ImageRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ImageRef {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ImageRef> for String {
    fn from(i: ImageRef) -> Self {
        i.0
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageRef({:?})", self.0)
    }
}
