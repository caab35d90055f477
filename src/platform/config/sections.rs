//! The sections of the config file, each read by its own function.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use ipnet::{Ipv4Net, Ipv6Net};
use kws_core::{DnsLabel, Domain, IfName};
use toml::Table;

use super::{ConfigError, PlatformConfig, reader::Section, secret::SecretSource};
use crate::platform::{parts::PlatformSettings, store::Quotas};

/// `[platform]`.
#[derive(Debug, Clone)]
pub struct PlatformSection {
    /// Apps and IDEs live at `<name>.<domain>` (`domain`).
    pub domain: Domain,
    /// Names no instance or app may take (`reserved_names`; default: www, api, dashboard,
    /// kws, admin, mail).
    pub reserved_names: Vec<DnsLabel>,
    /// Whether routes are served over HTTPS (`tls`, default true).
    pub tls: bool,
    /// The port browsers reach routes on when it is not the scheme's own (`public_port`).
    pub public_port: Option<u16>,
}

/// A PostgreSQL server: a URL (without its password) and where the password comes from.
/// `Debug` masks a password written into the URL anyway (`postgres://user:***@host/db`).
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl {
    /// `postgres://user@host:port/database`.
    pub url: String,
    /// `<prefix>password_env` / `<prefix>password_file`, when the URL has no password.
    pub password: Option<SecretSource>,
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgUrl")
            .field("url", &masked_url(&self.url))
            .field("password", &self.password)
            .finish()
    }
}

/// `url` with the password of its user info, if any, replaced by `***`.
fn masked_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// `[store]`.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// `backend = "memory"`: nothing survives the process.
    Memory,
    /// `backend = "postgres"`: `url`, `password_env` or `password_file`.
    Postgres(PgUrl),
}

/// `[ipam]`.
#[derive(Debug, Clone)]
pub enum IpamConfig {
    /// `backend = "memory"`.
    Memory,
    /// `backend = "redis"`: `redis_url`.
    Redis {
        /// The server.
        url: String,
    },
    /// `backend = "postgres"`: `postgres_url` (default: the store's).
    Postgres(PgUrl),
    /// `backend = "postgres+redis"`: both.
    PostgresRedis {
        /// PostgreSQL, the truth.
        postgres: PgUrl,
        /// Redis, the fast path.
        redis: String,
    },
}

/// Where the VPN interface is (`[vpn] device`).
#[derive(Debug, Clone)]
pub enum DeviceBackend {
    /// `memory`: an interface in this process only.
    Memory,
    /// `uapi`: a running wireguard-go (or boringtun) interface, by its UAPI socket
    /// (`uapi_socket`, default `/var/run/wireguard/<interface>.sock`).
    Uapi {
        /// The socket.
        socket: Option<PathBuf>,
    },
}

/// Where the VPN's peers are kept (`[vpn] peers`).
#[derive(Debug, Clone)]
pub enum PeersBackend {
    /// `memory`.
    Memory,
    /// `postgres`: `peers_url` (default: the store's).
    Postgres(PgUrl),
}

/// `[vpn]`.
#[derive(Debug, Clone)]
pub struct VpnConfig {
    /// `interface` (default `wg0`).
    pub interface: IfName,
    /// `device`.
    pub device: DeviceBackend,
    /// `peers`.
    pub peers: PeersBackend,
    /// `subnet` (default `10.8.0.0/24`).
    pub subnet: Ipv4Net,
    /// `subnet6`.
    pub subnet6: Option<Ipv6Net>,
    /// `endpoint`, where clients reach the server (default `vpn.<domain>:51820`).
    pub endpoint: String,
    /// `private_key_env` / `private_key_file` (base64); generated at each start when absent
    /// (fine for `memory` only: clients' configs name the server's public key).
    pub private_key: Option<SecretSource>,
    /// `dns`.
    pub dns: Vec<IpAddr>,
    /// `keepalive`, in seconds (default 25).
    pub keepalive: Option<u16>,
}

/// `[hostnet]`.
#[derive(Debug, Clone)]
pub enum HostnetConfig {
    /// `backend = "plan"`: renders what it would do, changes nothing.
    Plan,
    /// `backend = "linux"`: rtnetlink and nftables on this host; `uplink` masquerades the
    /// instance range out of that interface.
    Linux {
        /// `uplink`.
        uplink: Option<IfName>,
    },
}

/// `[runtime]`.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// `backend`: `docker` (the engine at `DOCKER_HOST` or the default socket), `memory`,
    /// or `none`.
    pub backend: &'static str,
    /// `ide_image` (default: the runtime's, `kws/ide:1`).
    pub ide_image: Option<String>,
    /// `ide_port` (default 8080).
    pub ide_port: u16,
    /// `owner_range` (default `10.213.0.0/16`).
    pub owner_range: Ipv4Net,
    /// `owner_prefix` (default 24).
    pub owner_prefix: u8,
    /// `stop_timeout` (default 10s).
    pub stop_timeout: Duration,
    /// `workspace_on_remove`: `delete` (default) or `keep`.
    pub keep_workspace: bool,
    /// `instance_cpus`, `instance_memory`: an instance's default limits.
    pub instance_cpu_millis: u64,
    /// In MiB.
    pub instance_memory_mb: u64,
    /// `max_instance_cpus`, `max_instance_memory`.
    pub max_cpu_millis: u64,
    /// In MiB.
    pub max_memory_mb: u64,
}

/// `[proxy]`.
#[derive(Debug, Clone)]
pub enum ProxyConfig {
    /// `backend = "memory"`.
    Memory,
    /// `backend = "nginx"`: `dir`, `binary`, `main_config`, `prefix`, `pid_file`,
    /// `http_listen`, `https_listen`, `certificate`, `certificate_key`, `ide_gate`.
    Nginx {
        /// kws's folder.
        dir: PathBuf,
        /// The nginx binary.
        binary: PathBuf,
        /// The main configuration.
        main_config: PathBuf,
        /// nginx's prefix.
        prefix: PathBuf,
        /// The master's pid file.
        pid_file: PathBuf,
        /// Plain HTTP.
        http_listen: SocketAddr,
        /// HTTPS.
        https_listen: SocketAddr,
        /// nginx's admin server for kws, on loopback (`admin_listen`).
        admin_listen: SocketAddr,
        /// The size of nginx's shared route table (`route_table`, default 32MiB).
        route_table_bytes: usize,
        /// The wildcard certificate's chain.
        certificate: PathBuf,
        /// Its key.
        certificate_key: PathBuf,
        /// Where nginx reaches kwsd's IDE gate (`ide_gate`, default `127.0.0.1:8080`, kwsd's
        /// default address): every request to an IDE is checked there.
        ide_gate: SocketAddr,
    },
    /// `backend = "caddy"`: `admin`, `dir`, `http_listen`, `https_listen`, `certificate`,
    /// `certificate_key`, `ide_gate`.
    Caddy {
        /// The admin API.
        admin: String,
        /// Where kws keeps Caddy's routes across its restarts (`dir`).
        dir: PathBuf,
        /// Plain HTTP.
        http_listen: SocketAddr,
        /// HTTPS.
        https_listen: SocketAddr,
        /// The chain.
        certificate: PathBuf,
        /// The key.
        certificate_key: PathBuf,
        /// Where Caddy reaches kwsd's IDE gate (`ide_gate`, as for nginx).
        ide_gate: SocketAddr,
    },
}

/// How the ACME DNS-01 challenge is answered (`[tls] dns_provider`).
#[derive(Debug, Clone)]
pub enum TlsDns {
    /// `cloudflare`: `dns_token_env` / `dns_token_file`, `cloudflare_api` (default the
    /// public API).
    Cloudflare {
        /// The API base.
        api: String,
        /// The token.
        token: SecretSource,
    },
    /// `challtestsrv`: pebble's test DNS, `challtestsrv_url`.
    ChallTestSrv {
        /// Its management API.
        url: String,
    },
}

/// `[tls]`.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// `acme_directory`.
    pub directory: String,
    /// `acme_root`: a PEM root for the ACME server's own TLS (pebble's).
    pub acme_root: Option<PathBuf>,
    /// `contact`, e.g. `mailto:ops@example.org`.
    pub contact: Vec<String>,
    /// `account_file`.
    pub account_file: PathBuf,
    /// `dns_provider`.
    pub dns: TlsDns,
    /// `renew_within` (default 30d).
    pub renew_within: Duration,
    /// `propagation_delay` (default 30s; 0s for challtestsrv).
    pub propagation_delay: Duration,
}

/// `[databases]`.
#[derive(Debug, Clone)]
pub enum DatabasesConfig {
    /// `backend = "none"`: databases are unavailable.
    None,
    /// `backend = "postgres"`: `admin_url`, `admin_password_env` / `_file`, `tenant_host`,
    /// `tenant_port`, `max_per_tenant`.
    Postgres {
        /// The admin connection.
        admin: PgUrl,
        /// Where tenants connect.
        tenant_endpoint: Option<(String, u16)>,
        /// The provisioner's own cap per tenant.
        max_per_tenant: Option<u32>,
    },
}

/// `[exec]`.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// `backend`: `docker` or `none`.
    pub enabled: bool,
    /// `pool_size` (default 5).
    pub pool_size: usize,
    /// `queue_capacity` (default 100).
    pub queue_capacity: usize,
    /// `runner`: `supervisor` (default) or `docker-exec` (the fallback for an engine that
    /// refuses what the supervisor needs); true for `docker-exec`.
    pub docker_exec_runner: bool,
}

/// `[operations]`.
#[derive(Debug, Clone)]
pub struct OperationsConfig {
    /// `deadline` (default 5m).
    pub deadline: Duration,
    /// `lease` (default 10s).
    pub lease: Duration,
    /// `reconcile_every` (default 30s).
    pub reconcile_every: Duration,
    /// `event_window` (default 10000).
    pub event_window: usize,
}

pub(super) fn read_all(root: &Table) -> Result<PlatformConfig, ConfigError> {
    let platform = read_platform(root)?;
    let store = read_store(root)?;
    let store_url = match &store {
        StoreConfig::Postgres(url) => Some(url.clone()),
        StoreConfig::Memory => None,
    };
    Ok(PlatformConfig {
        ipam: read_ipam(root, store_url.as_ref())?,
        vpn: read_vpn(root, &platform, store_url.as_ref())?,
        hostnet: read_hostnet(root)?,
        runtime: read_runtime(root)?,
        proxy: read_proxy(root)?,
        tls: read_tls(root)?,
        databases: read_databases(root)?,
        exec: read_exec(root)?,
        quotas: read_quotas(root)?,
        operations: read_operations(root)?,
        platform,
        store,
    })
}

fn read_platform(root: &Table) -> Result<PlatformSection, ConfigError> {
    let s = Section::of(root, "platform")?;
    let domain = s.required(
        "domain",
        s.parse::<Domain>("domain", "a domain name")?,
        "the platform's domain, e.g. kws.example.org",
    )?;
    let defaults = PlatformSettings::new(domain.clone());
    let section = PlatformSection {
        reserved_names: s.list("reserved_names", "DNS labels")?.unwrap_or(defaults.reserved_names),
        tls: s.boolean("tls")?.unwrap_or(true),
        public_port: s.integer("public_port", 1, 65535)?.map(|p| p as u16),
        domain,
    };
    s.finish()?;
    Ok(section)
}

fn pg_url(
    s: &Section<'_>,
    key: &str,
    password: &str,
    default: Option<&PgUrl>,
) -> Result<Option<PgUrl>, ConfigError> {
    let url = s.string(key)?;
    let source = s.secret(password)?;
    match url {
        Some(url) => {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                // Not shown: a URL may carry a password.
                let shown = "(a URL, not shown)".to_owned();
                return Err(ConfigError::value(s.name(), key, shown, "a postgres:// URL"));
            }
            Ok(Some(PgUrl { url, password: source }))
        }
        None => Ok(default.cloned()),
    }
}

fn read_store(root: &Table) -> Result<StoreConfig, ConfigError> {
    let s = Section::of(root, "store")?;
    let store = match s.choice("backend", &["memory", "postgres"])?.unwrap_or("memory") {
        "postgres" => {
            let url = pg_url(&s, "url", "password", None)?;
            StoreConfig::Postgres(s.required("url", url, "a postgres:// URL")?)
        }
        _ => StoreConfig::Memory,
    };
    s.finish()?;
    Ok(store)
}

fn read_ipam(root: &Table, store: Option<&PgUrl>) -> Result<IpamConfig, ConfigError> {
    let s = Section::of(root, "ipam")?;
    let backend = s.choice("backend", &["memory", "redis", "postgres", "postgres+redis"])?;
    let postgres = pg_url(&s, "postgres_url", "postgres_password", store)?;
    let redis = s.string("redis_url")?;
    let need_pg = || {
        s.required("postgres_url", postgres.clone(), "a postgres:// URL (or a postgres [store])")
    };
    let need_redis = || s.required("redis_url", redis.clone(), "a redis:// URL");
    let ipam = match backend.unwrap_or("memory") {
        "redis" => IpamConfig::Redis { url: need_redis()? },
        "postgres" => IpamConfig::Postgres(need_pg()?),
        "postgres+redis" => {
            IpamConfig::PostgresRedis { postgres: need_pg()?, redis: need_redis()? }
        }
        _ => IpamConfig::Memory,
    };
    s.finish()?;
    Ok(ipam)
}

fn read_vpn(
    root: &Table,
    platform: &PlatformSection,
    store: Option<&PgUrl>,
) -> Result<VpnConfig, ConfigError> {
    let s = Section::of(root, "vpn")?;
    let interface = s.parse::<IfName>("interface", "an interface name")?;
    let device = match s.choice("device", &["memory", "uapi"])?.unwrap_or("memory") {
        "uapi" => DeviceBackend::Uapi { socket: s.path("uapi_socket")? },
        _ => DeviceBackend::Memory,
    };
    let peers_url = pg_url(&s, "peers_url", "peers_password", store)?;
    let peers = match s.choice("peers", &["memory", "postgres"])?.unwrap_or("memory") {
        "postgres" => PeersBackend::Postgres(s.required(
            "peers_url",
            peers_url,
            "a postgres:// URL (or a postgres [store])",
        )?),
        _ => PeersBackend::Memory,
    };
    let subnet = s.parse::<Ipv4Net>("subnet", "an IPv4 prefix such as 10.8.0.0/24")?;
    if let Some(net) = subnet.filter(|n| n.prefix_len() > 30) {
        return Err(ConfigError::value(
            "vpn",
            "subnet",
            format!("\"{net}\""),
            "a prefix of at most /30",
        ));
    }
    let keepalive = s.integer("keepalive", 0, 65535)?.map(|k| k as u16);
    let config = VpnConfig {
        interface: interface.unwrap_or_else(wg0),
        device,
        peers,
        subnet: subnet.unwrap_or_else(default_vpn_subnet),
        subnet6: s.parse::<Ipv6Net>("subnet6", "an IPv6 prefix such as fd00:8::/64")?,
        endpoint: s.string("endpoint")?.unwrap_or_else(|| format!("vpn.{}:51820", platform.domain)),
        private_key: s.secret("private_key")?,
        dns: s.list("dns", "IP addresses")?.unwrap_or_default(),
        keepalive: keepalive.or(Some(25)).filter(|k| *k > 0),
    };
    s.finish()?;
    Ok(config)
}

fn default_vpn_subnet() -> Ipv4Net {
    Ipv4Net::new(std::net::Ipv4Addr::new(10, 8, 0, 0), 24).unwrap_or_default()
}

fn wg0() -> IfName {
    IfName::parse("wg0").expect("wg0 is an interface name")
}

fn read_hostnet(root: &Table) -> Result<HostnetConfig, ConfigError> {
    let s = Section::of(root, "hostnet")?;
    let config = match s.choice("backend", &["plan", "linux"])?.unwrap_or("plan") {
        "linux" => {
            HostnetConfig::Linux { uplink: s.parse::<IfName>("uplink", "an interface name")? }
        }
        _ => HostnetConfig::Plan,
    };
    s.finish()?;
    Ok(config)
}

fn read_runtime(root: &Table) -> Result<RuntimeConfig, ConfigError> {
    let s = Section::of(root, "runtime")?;
    let mb = |key: &str| -> Result<Option<u64>, ConfigError> { Ok(s.bytes(key)?.map(|b| b >> 20)) };
    let millis = |key: &str| -> Result<Option<u64>, ConfigError> {
        Ok(s.number(key, 0.01, 256.0)?.map(|c| (c * 1000.0).round() as u64))
    };
    let config = RuntimeConfig {
        backend: s.choice("backend", &["docker", "memory", "none"])?.unwrap_or("docker"),
        ide_image: s.string("ide_image")?,
        ide_port: s.integer("ide_port", 1, 65535)?.unwrap_or(8080) as u16,
        owner_range: s.parse("owner_range", "an IPv4 prefix")?.unwrap_or_else(default_owner_range),
        owner_prefix: s.integer("owner_prefix", 8, 29)?.unwrap_or(24) as u8,
        stop_timeout: s.duration("stop_timeout")?.unwrap_or(Duration::from_secs(10)),
        keep_workspace: s.choice("workspace_on_remove", &["delete", "keep"])? == Some("keep"),
        instance_cpu_millis: millis("instance_cpus")?.unwrap_or(1000),
        instance_memory_mb: mb("instance_memory")?.unwrap_or(1024),
        max_cpu_millis: millis("max_instance_cpus")?.unwrap_or(4000),
        max_memory_mb: mb("max_instance_memory")?.unwrap_or(8192),
    };
    if config.owner_prefix < config.owner_range.prefix_len() {
        let range = config.owner_range;
        return Err(ConfigError::value(
            "runtime",
            "owner_prefix",
            config.owner_prefix.to_string(),
            format!("at least the owner_range's /{}", range.prefix_len()),
        ));
    }
    if config.instance_cpu_millis > config.max_cpu_millis
        || config.instance_memory_mb > config.max_memory_mb
    {
        return Err(ConfigError::value(
            "runtime",
            "instance_cpus",
            format!("{}", config.instance_cpu_millis as f64 / 1000.0),
            "defaults within max_instance_cpus and max_instance_memory",
        ));
    }
    s.finish()?;
    Ok(config)
}

fn default_owner_range() -> Ipv4Net {
    Ipv4Net::new(std::net::Ipv4Addr::new(10, 213, 0, 0), 16).unwrap_or_default()
}

fn read_proxy(root: &Table) -> Result<ProxyConfig, ConfigError> {
    let s = Section::of(root, "proxy")?;
    let listen = |key: &str, default: &str| -> Result<SocketAddr, ConfigError> {
        Ok(s.parse::<SocketAddr>(key, "an address and port such as 0.0.0.0:443")?.unwrap_or_else(
            || default.parse().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
        ))
    };
    let need = |key: &str| -> Result<PathBuf, ConfigError> {
        let path = s.path(key)?;
        s.required(key, path, "a path")
    };
    let config = match s.choice("backend", &["memory", "nginx", "caddy"])?.unwrap_or("memory") {
        "nginx" => ProxyConfig::Nginx {
            dir: s.path("dir")?.unwrap_or_else(|| "/etc/nginx/kws".into()),
            binary: s.path("binary")?.unwrap_or_else(|| "/usr/sbin/nginx".into()),
            main_config: s.path("main_config")?.unwrap_or_else(|| "/etc/nginx/nginx.conf".into()),
            prefix: s.path("prefix")?.unwrap_or_else(|| "/etc/nginx".into()),
            pid_file: s.path("pid_file")?.unwrap_or_else(|| "/run/nginx.pid".into()),
            http_listen: listen("http_listen", "0.0.0.0:80")?,
            https_listen: listen("https_listen", "0.0.0.0:443")?,
            admin_listen: listen("admin_listen", "127.0.0.1:8099")?,
            route_table_bytes: s
                .bytes("route_table")?
                .map_or(kws_proxy::DEFAULT_ROUTE_TABLE_BYTES, |b| b as usize),
            certificate: need("certificate")?,
            certificate_key: need("certificate_key")?,
            ide_gate: listen("ide_gate", "127.0.0.1:8080")?,
        },
        "caddy" => ProxyConfig::Caddy {
            admin: s.string("admin")?.unwrap_or_else(|| "http://127.0.0.1:2019".to_owned()),
            dir: s.path("dir")?.unwrap_or_else(|| "/var/lib/kws/caddy".into()),
            http_listen: listen("http_listen", "0.0.0.0:80")?,
            https_listen: listen("https_listen", "0.0.0.0:443")?,
            certificate: need("certificate")?,
            certificate_key: need("certificate_key")?,
            ide_gate: listen("ide_gate", "127.0.0.1:8080")?,
        },
        _ => ProxyConfig::Memory,
    };
    s.finish()?;
    Ok(config)
}

fn read_tls(root: &Table) -> Result<Option<TlsConfig>, ConfigError> {
    if !root.contains_key("tls") {
        return Ok(None);
    }
    let s = Section::of(root, "tls")?;
    let directory = s.string("acme_directory")?;
    let directory = s.required("acme_directory", directory, "the ACME directory URL")?;
    let dns = match s.choice("dns_provider", &["cloudflare", "challtestsrv"])? {
        Some("challtestsrv") => {
            let url = s.string("challtestsrv_url")?;
            TlsDns::ChallTestSrv {
                url: s.required("challtestsrv_url", url, "pebble-challtestsrv's management URL")?,
            }
        }
        Some(_) => {
            let token = s.secret("dns_token")?;
            TlsDns::Cloudflare {
                api: s
                    .string("cloudflare_api")?
                    .unwrap_or_else(|| "https://api.cloudflare.com/client/v4".to_owned()),
                token: s.required("dns_token_env", token, "dns_token_env or dns_token_file")?,
            }
        }
        None => {
            return Err(ConfigError::value(
                "tls",
                "dns_provider",
                "(missing)".to_owned(),
                "cloudflare or challtestsrv",
            ));
        }
    };
    let challtest = matches!(dns, TlsDns::ChallTestSrv { .. });
    let config = TlsConfig {
        directory,
        acme_root: s.path("acme_root")?,
        contact: s.list("contact", "contact URLs")?.unwrap_or_default(),
        account_file: s
            .path("account_file")?
            .unwrap_or_else(|| "/var/lib/kws/acme-account.json".into()),
        renew_within: s.duration("renew_within")?.unwrap_or(Duration::from_secs(30 * 86_400)),
        propagation_delay: s.duration("propagation_delay")?.unwrap_or(if challtest {
            Duration::ZERO
        } else {
            Duration::from_secs(30)
        }),
        dns,
    };
    s.finish()?;
    Ok(Some(config))
}

fn read_databases(root: &Table) -> Result<DatabasesConfig, ConfigError> {
    let s = Section::of(root, "databases")?;
    let config = match s.choice("backend", &["none", "postgres"])?.unwrap_or("none") {
        "postgres" => {
            let admin = pg_url(&s, "admin_url", "admin_password", None)?;
            let host = s.string("tenant_host")?;
            let port = s.integer("tenant_port", 1, 65535)?;
            DatabasesConfig::Postgres {
                admin: s.required(
                    "admin_url",
                    admin,
                    "a postgres:// URL of a role that may create roles and databases",
                )?,
                tenant_endpoint: host.map(|h| (h, port.unwrap_or(5432) as u16)),
                max_per_tenant: s.integer("max_per_tenant", 1, 10_000)?.map(|n| n as u32),
            }
        }
        _ => DatabasesConfig::None,
    };
    s.finish()?;
    Ok(config)
}

fn read_exec(root: &Table) -> Result<ExecConfig, ConfigError> {
    let s = Section::of(root, "exec")?;
    let config = ExecConfig {
        enabled: s.choice("backend", &["docker", "none"])?.unwrap_or("none") == "docker",
        pool_size: s.integer("pool_size", 1, 256)?.unwrap_or(5) as usize,
        queue_capacity: s.integer("queue_capacity", 1, 100_000)?.unwrap_or(100) as usize,
        docker_exec_runner: s.choice("runner", &["supervisor", "docker-exec"])?
            == Some("docker-exec"),
    };
    s.finish()?;
    Ok(config)
}

fn read_quotas(root: &Table) -> Result<Quotas, ConfigError> {
    let s = Section::of(root, "quotas")?;
    let defaults = Quotas {
        instances: Some(5),
        cpu_millis: Some(4000),
        memory_mb: Some(8192),
        devices: Some(10),
        apps: Some(10),
        databases: Some(5),
    };
    let count = |key: &str, default: Option<u64>| -> Result<Option<u64>, ConfigError> {
        Ok(s.integer(key, 0, 1_000_000)?.or(default))
    };
    let quotas = Quotas {
        instances: count("instances", defaults.instances)?,
        cpu_millis: s
            .number("cpus", 0.0, 100_000.0)?
            .map(|c| (c * 1000.0).round() as u64)
            .or(defaults.cpu_millis),
        memory_mb: s.bytes("memory")?.map(|b| b >> 20).or(defaults.memory_mb),
        devices: count("devices", defaults.devices)?,
        apps: count("apps", defaults.apps)?,
        databases: count("databases", defaults.databases)?,
    };
    s.finish()?;
    Ok(quotas)
}

fn read_operations(root: &Table) -> Result<OperationsConfig, ConfigError> {
    let s = Section::of(root, "operations")?;
    let config = OperationsConfig {
        deadline: s.duration("deadline")?.unwrap_or(Duration::from_secs(300)),
        lease: s.duration("lease")?.unwrap_or(Duration::from_secs(10)),
        reconcile_every: s.duration("reconcile_every")?.unwrap_or(Duration::from_secs(30)),
        event_window: s.integer("event_window", 100, 10_000_000)?.unwrap_or(10_000) as usize,
    };
    if config.lease < Duration::from_millis(500) {
        return Err(ConfigError::value(
            "operations",
            "lease",
            format!("{:?}", config.lease),
            "at least 500ms",
        ));
    }
    s.finish()?;
    Ok(config)
}

pub(super) fn embedded(docker: bool) -> PlatformConfig {
    let domain: Domain = "kws.localhost".parse().expect("kws.localhost is a domain");
    let settings = PlatformSettings::new(domain.clone());
    let platform = PlatformSection {
        domain,
        reserved_names: settings.reserved_names.clone(),
        tls: false,
        public_port: None,
    };
    PlatformConfig {
        vpn: VpnConfig {
            interface: wg0(),
            device: DeviceBackend::Memory,
            peers: PeersBackend::Memory,
            subnet: default_vpn_subnet(),
            subnet6: None,
            endpoint: format!("vpn.{}:51820", platform.domain),
            private_key: None,
            dns: Vec::new(),
            keepalive: Some(25),
        },
        platform,
        store: StoreConfig::Memory,
        ipam: IpamConfig::Memory,
        hostnet: HostnetConfig::Plan,
        runtime: RuntimeConfig {
            backend: if docker { "docker" } else { "memory" },
            ide_image: None,
            ide_port: 8080,
            owner_range: default_owner_range(),
            owner_prefix: 24,
            stop_timeout: Duration::from_secs(10),
            keep_workspace: false,
            instance_cpu_millis: 1000,
            instance_memory_mb: 1024,
            max_cpu_millis: 4000,
            max_memory_mb: 8192,
        },
        proxy: ProxyConfig::Memory,
        tls: None,
        databases: DatabasesConfig::None,
        exec: ExecConfig {
            enabled: false,
            pool_size: 5,
            queue_capacity: 100,
            docker_exec_runner: false,
        },
        quotas: settings.default_quotas,
        operations: OperationsConfig {
            deadline: settings.operation_deadline,
            lease: settings.operation_lease,
            reconcile_every: settings.reconcile_every,
            event_window: settings.event_window,
        },
    }
}
