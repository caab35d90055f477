//! `PlatformConfig`: one TOML file, one section per capability, each picking its backend and
//! settings. Secrets (the DNS API token, database passwords, the VPN's private key) come from
//! the environment or a file the config names (`<name>_env`, `<name>_file`), never from the
//! file itself, and are never printed back. `kws.example.toml` at the root of the repository
//! is a commented full config.
//!
//! A bad file is one [`ConfigError`] naming the section, the key and the value.

mod build;
mod reader;
mod secret;
mod sections;

#[cfg(feature = "postgres")]
pub use build::pg_pool;
pub use secret::{Secret, SecretSource};
pub use sections::{
    DatabasesConfig, DeviceBackend, ExecConfig, HostnetConfig, IpamConfig, OperationsConfig,
    PeersBackend, PgUrl, PlatformSection, ProxyConfig, RuntimeConfig, StoreConfig, TlsConfig,
    TlsDns, VpnConfig,
};

use std::path::Path;

use crate::platform::store::Quotas;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value is wrong.
    #[error("[{section}] {key} = {value}: expected {expected}")]
    Value {
        /// The section.
        section: String,
        /// The key.
        key: String,
        /// The value as written (escaped and cut; a secret's value is never shown).
        value: String,
        /// What the key takes.
        expected: String,
    },
    /// The file is not TOML.
    #[error("{path}: not a TOML file: {reason}")]
    Syntax {
        /// The file.
        path: String,
        /// Where and why (line and column).
        reason: String,
    },
    /// The file cannot be read.
    #[error("{path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn value(
        section: &str,
        key: &str,
        value: String,
        expected: impl Into<String>,
    ) -> Self {
        ConfigError::Value {
            section: section.to_owned(),
            key: key.to_owned(),
            value,
            expected: expected.into(),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// `[platform]`: the domain and what is reserved in it.
    pub platform: PlatformSection,
    /// `[store]`: the store of record.
    pub store: StoreConfig,
    /// `[ipam]`: the address allocator.
    pub ipam: IpamConfig,
    /// `[vpn]`: the WireGuard interface and its peers.
    pub vpn: VpnConfig,
    /// `[hostnet]`: the host's firewall and bridges.
    pub hostnet: HostnetConfig,
    /// `[runtime]`: where instances run.
    pub runtime: RuntimeConfig,
    /// `[proxy]`: where routes are served.
    pub proxy: ProxyConfig,
    /// `[tls]`: the wildcard certificate's ACME issuer, if any.
    pub tls: Option<TlsConfig>,
    /// `[databases]`: managed PostgreSQL.
    pub databases: DatabasesConfig,
    /// `[exec]`: code execution.
    pub exec: ExecConfig,
    /// `[quotas]`: a new tenant's limits.
    pub quotas: Quotas,
    /// `[operations]`: deadlines, leases, timers.
    pub operations: OperationsConfig,
}

impl PlatformConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks the text of a config file (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let root: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: origin.to_owned(),
            reason: e.to_string().trim().replace('\n', " "),
        })?;
        const SECTIONS: [&str; 12] = [
            "platform",
            "store",
            "ipam",
            "vpn",
            "hostnet",
            "runtime",
            "proxy",
            "tls",
            "databases",
            "exec",
            "quotas",
            "operations",
        ];
        if let Some((key, _)) = root.iter().find(|(k, _)| !SECTIONS.contains(&k.as_str())) {
            return Err(ConfigError::value(
                key,
                "",
                "(section)".to_owned(),
                format!("one of the sections {}", SECTIONS.join(", ")),
            ));
        }
        sections::read_all(&root)
    }

    /// The embedded defaults as a config: every in-memory backend, the `plan` host network,
    /// the memory proxy, no databases and no code execution, and a Docker runtime when
    /// `docker` (else the in-memory one).
    pub fn embedded(docker: bool) -> Self {
        sections::embedded(docker)
    }
}
