//! From a checked config to a running set of backends: connects to each service, applies
//! migrations, and marks a feature `Unavailable` (with the reason) when its engine is not
//! there, so the rest still serves.

#[cfg(feature = "postgres")]
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;
use kws_hostnet::{Forwarding, HostNetSpec, HostNetwork, Masquerade, PlanHostNetwork};
use kws_ipam::{IpAllocator, MemoryAllocator};
use kws_proxy::{MemoryProxy, ProxyWriter};
use kws_runtime::{ImageRef, MemoryRuntime, Runtime, VolumePolicy};
use kws_wg::{
    Endpoint, MemoryDevice, MemoryPeerStore, PeerStore, PrivateKey, UapiDevice, VpnService,
    VpnSettings, WgDevice,
};

use super::{
    ConfigError, DeviceBackend, HostnetConfig, IpamConfig, PeersBackend, PgUrl, PlatformConfig,
    ProxyConfig, StoreConfig,
};
use crate::platform::{
    Backend, CodeRunner, Error, IdeSettings, Platform, PlatformParts, PlatformSettings,
    model::InstanceResources,
    store::{MemoryStore, PlatformStore},
};

fn missing_feature(section: &str, backend: &str, feature: &str) -> Error {
    Error::Config(ConfigError::value(
        section,
        "backend",
        format!("\"{backend}\""),
        format!("a backend this build has (it was built without the `{feature}` feature)"),
    ))
}

impl PlatformConfig {
    /// The Platform's settings from this config.
    pub fn settings(&self) -> PlatformSettings {
        let mut settings = PlatformSettings::new(self.platform.domain.clone());
        settings.reserved_names = self.platform.reserved_names.clone();
        settings.tls = self.platform.tls;
        settings.public_port = self.platform.public_port;
        let r = &self.runtime;
        settings.ide = IdeSettings {
            image: r.ide_image.as_deref().and_then(|i| ImageRef::parse(i).ok()),
            port: r.ide_port,
        };
        settings.instance_defaults = InstanceResources {
            cpu_millis: r.instance_cpu_millis,
            memory_mb: r.instance_memory_mb,
        };
        settings.instance_max =
            InstanceResources { cpu_millis: r.max_cpu_millis, memory_mb: r.max_memory_mb };
        settings.instance_range = r.owner_range;
        settings.workspace_on_remove =
            if r.keep_workspace { VolumePolicy::Keep } else { VolumePolicy::Delete };
        settings.default_quotas = self.quotas;
        let ops = &self.operations;
        settings.operation_deadline = ops.deadline;
        settings.operation_lease = ops.lease;
        settings.reconcile_every = ops.reconcile_every;
        settings.event_window = ops.event_window;
        if let HostnetConfig::Linux { uplink } = &self.hostnet {
            settings.base_network = HostNetSpec {
                forwarding: Forwarding { ipv4: true, ipv6: self.vpn.subnet6.is_some() },
                masquerade: uplink
                    .iter()
                    .map(|out| Masquerade {
                        source: IpNet::V4(r.owner_range),
                        out_interface: out.clone(),
                    })
                    .collect(),
                ..HostNetSpec::default()
            };
        }
        settings
    }

    /// Connects every backend and composes the Platform (not started: see
    /// [`Platform::start`]).
    pub async fn build(&self) -> Result<Platform, Error> {
        Ok(Platform::new(self.connect().await?))
    }

    /// Connects every backend.
    pub async fn connect(&self) -> Result<PlatformParts, Error> {
        let settings = self.settings();
        let store = self.connect_store().await?;
        let allocator = self.connect_ipam().await?;
        let vpn = self.connect_vpn(allocator.clone(), &settings).await?;
        let hostnet = self.connect_hostnet()?;
        let runtime = self.connect_runtime(allocator.clone()).await?;
        let (proxy, reload) = self.connect_proxy(&settings).await?;
        #[cfg(feature = "acme")]
        let certs = self.connect_tls(reload)?;
        #[cfg(not(feature = "acme"))]
        let _ = reload;
        let databases = self.connect_databases().await?;
        let exec = self.connect_exec().await;
        Ok(PlatformParts {
            settings,
            store,
            allocator,
            vpn,
            hostnet,
            runtime,
            proxy,
            #[cfg(feature = "acme")]
            certs,
            databases,
            exec,
        })
    }

    async fn connect_store(&self) -> Result<Arc<dyn PlatformStore>, Error> {
        match &self.store {
            StoreConfig::Memory => Ok(Arc::new(MemoryStore::new())),
            #[cfg(feature = "postgres")]
            StoreConfig::Postgres(url) => {
                let pool = pg_pool("store", url, 16).await?;
                Ok(Arc::new(crate::platform::store::PostgresStore::connect(pool).await?))
            }
            #[cfg(not(feature = "postgres"))]
            StoreConfig::Postgres(_) => Err(missing_feature("store", "postgres", "postgres")),
        }
    }

    async fn connect_ipam(&self) -> Result<Arc<dyn IpAllocator>, Error> {
        #[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(unused_variables))]
        let ipam = |e: kws_ipam::Error| Error::backend("ipam", e);
        match &self.ipam {
            IpamConfig::Memory => Ok(Arc::new(MemoryAllocator::new())),
            #[cfg(feature = "redis")]
            IpamConfig::Redis { url } => Ok(Arc::new(
                kws_ipam::RedisAllocator::connect(url, "kws:ipam").await.map_err(ipam)?,
            )),
            #[cfg(feature = "postgres")]
            IpamConfig::Postgres(url) => {
                let pool = pg_pool("ipam", url, 16).await?;
                Ok(Arc::new(kws_ipam::PostgresAllocator::new(pool).await.map_err(ipam)?))
            }
            #[cfg(all(feature = "postgres", feature = "redis"))]
            IpamConfig::PostgresRedis { postgres, redis } => {
                let pool = pg_pool("ipam", postgres, 16).await?;
                let client =
                    redis::Client::open(redis.as_str()).map_err(|e| Error::backend("ipam", e))?;
                Ok(Arc::new(
                    kws_ipam::PgRedisAllocator::new(pool, &client, "kws:ipam")
                        .await
                        .map_err(ipam)?,
                ))
            }
            #[allow(unreachable_patterns)]
            other => {
                let name = match other {
                    IpamConfig::Redis { .. } => ("redis", "redis"),
                    IpamConfig::Postgres(_) => ("postgres", "postgres"),
                    _ => ("postgres+redis", "postgres and redis"),
                };
                Err(missing_feature("ipam", name.0, name.1))
            }
        }
    }

    async fn connect_vpn(
        &self,
        allocator: Arc<dyn IpAllocator>,
        settings: &PlatformSettings,
    ) -> Result<VpnService, Error> {
        let v = &self.vpn;
        let bad = |key: &str, why: String| {
            Error::Config(ConfigError::value("vpn", key, "(see the reason)".to_owned(), why))
        };
        let server_key = match &v.private_key {
            Some(source) => {
                let secret = source.read().map_err(|why| bad("private_key_file", why))?;
                PrivateKey::from_base64(secret.expose()).map_err(|e| {
                    bad("private_key_file", format!("a base64 WireGuard private key ({e})"))
                })?
            }
            None => PrivateKey::generate().map_err(|e| Error::backend("vpn", e))?,
        };
        let endpoint = Endpoint::parse(&v.endpoint).map_err(|e| {
            Error::Config(ConfigError::value(
                "vpn",
                "endpoint",
                format!("\"{}\"", v.endpoint.escape_debug()),
                format!("host:port ({e})"),
            ))
        })?;
        let vpn_error = |e: kws_wg::Error| Error::backend("vpn", e);
        let mut s = VpnSettings::new(v.interface.clone(), server_key, endpoint, v.subnet)
            .map_err(vpn_error)?;
        s.subnet_v6 = v.subnet6;
        s.dns = v.dns.clone();
        s.keepalive = v.keepalive;
        s.routed_subnets = vec![IpNet::V4(settings.instance_range)];
        let device: Arc<dyn WgDevice> = match &v.device {
            DeviceBackend::Memory => Arc::new(MemoryDevice::new(v.interface.clone())),
            DeviceBackend::Uapi { socket: Some(path) } => {
                Arc::new(UapiDevice::with_socket(v.interface.clone(), path.clone()))
            }
            DeviceBackend::Uapi { socket: None } => Arc::new(UapiDevice::new(v.interface.clone())),
        };
        let peers: Arc<dyn PeerStore> = match &v.peers {
            PeersBackend::Memory => Arc::new(MemoryPeerStore::new()),
            #[cfg(feature = "postgres")]
            PeersBackend::Postgres(url) => {
                let pool = pg_pool("vpn", url, 8).await?;
                Arc::new(kws_wg::PostgresPeerStore::connect(pool).await.map_err(vpn_error)?)
            }
            #[cfg(not(feature = "postgres"))]
            PeersBackend::Postgres(_) => {
                return Err(missing_feature("vpn", "postgres", "postgres"));
            }
        };
        let vpn = VpnService::new(s, allocator, peers, device).map_err(vpn_error)?;
        vpn.create_pools().await.map_err(vpn_error)?;
        Ok(vpn)
    }

    fn connect_hostnet(&self) -> Result<Arc<dyn HostNetwork>, Error> {
        match &self.hostnet {
            HostnetConfig::Plan => Ok(Arc::new(PlanHostNetwork::new())),
            #[cfg(feature = "linux")]
            HostnetConfig::Linux { .. } => {
                let net =
                    kws_hostnet::LinuxHostNetwork::with_cache_file("/run/kws/hostnet-cache.json")
                        .map_err(|e| Error::backend("firewall", e))?;
                Ok(Arc::new(net))
            }
            #[cfg(not(feature = "linux"))]
            HostnetConfig::Linux { .. } => Err(missing_feature("hostnet", "linux", "linux")),
        }
    }

    async fn connect_runtime(
        &self,
        allocator: Arc<dyn IpAllocator>,
    ) -> Result<Backend<Arc<dyn Runtime>>, Error> {
        let r = &self.runtime;
        match r.backend {
            "memory" => {
                let image = ImageRef::parse(r.ide_image.as_deref().unwrap_or("kws/ide:1"))
                    .map_err(|e| {
                        Error::Config(ConfigError::value(
                            "runtime",
                            "ide_image",
                            "(see the reason)".to_owned(),
                            e.to_string(),
                        ))
                    })?;
                let rt = MemoryRuntime::with_range(allocator, image, r.owner_range, r.owner_prefix);
                Ok(Backend::Ready(Arc::new(rt)))
            }
            #[cfg(feature = "docker")]
            "docker" => {
                use kws_runtime::docker::{DockerConfig, DockerRuntime, IdeConfig};
                let image = ImageRef::parse(r.ide_image.as_deref().unwrap_or("kws/ide:1"))
                    .map_err(|e| {
                        Error::Config(ConfigError::value(
                            "runtime",
                            "ide_image",
                            "(see the reason)".to_owned(),
                            e.to_string(),
                        ))
                    })?;
                let mut config = DockerConfig::new(IdeConfig { image, port: r.ide_port });
                config.owner_range = r.owner_range;
                config.owner_prefix_len = r.owner_prefix;
                config.stop_timeout = r.stop_timeout;
                match DockerRuntime::connect(allocator, config).await {
                    Ok(rt) => Ok(Backend::Ready(Arc::new(rt))),
                    Err(e) => {
                        tracing::warn!(error = %e, "no Docker engine: instances are unavailable");
                        Ok(Backend::Missing(format!("no Docker engine is reachable ({e})")))
                    }
                }
            }
            #[cfg(not(feature = "docker"))]
            "docker" => Ok(Backend::Missing(
                "this build has no Docker backend (feature `docker`)".to_owned(),
            )),
            _ => Ok(Backend::Missing(
                "no runtime is configured ([runtime] backend = \"none\")".to_owned(),
            )),
        }
    }

    /// The proxy, and the same proxy as a certificate reloader (for the ACME issuer).
    async fn connect_proxy(
        &self,
        settings: &PlatformSettings,
    ) -> Result<(Arc<dyn ProxyWriter>, Option<CertReloader>), Error> {
        let policy = settings.route_policy();
        #[cfg_attr(not(any(feature = "nginx", feature = "caddy")), allow(unused_variables))]
        let proxy_error = |e: kws_proxy::ProxyError| Error::backend("proxy", e);
        match &self.proxy {
            ProxyConfig::Memory => Ok((Arc::new(MemoryProxy::new(policy)), None)),
            #[cfg(feature = "nginx")]
            ProxyConfig::Nginx {
                dir,
                binary,
                main_config,
                prefix,
                pid_file,
                http_listen,
                https_listen,
                admin_listen,
                route_table_bytes,
                certificate,
                certificate_key,
                ide_gate,
            } => {
                let config = kws_proxy::nginx::NginxConfig {
                    binary: binary.clone(),
                    main_config: main_config.clone(),
                    prefix: prefix.clone(),
                    pid_file: pid_file.clone(),
                    reload_timeout: std::time::Duration::from_secs(10),
                    dir: dir.clone(),
                    http_listen: *http_listen,
                    https_listen: *https_listen,
                    admin_listen: *admin_listen,
                    route_table_bytes: *route_table_bytes,
                    default_server: true,
                    certificate: kws_proxy::CertFiles {
                        chain: certificate.clone(),
                        key: certificate_key.clone(),
                    },
                    timeouts: kws_proxy::nginx::ProxyTimeouts::default(),
                    ide_gate: Some(*ide_gate),
                };
                let nginx = Arc::new(
                    kws_proxy::nginx::NginxProxy::open(policy, config)
                        .await
                        .map_err(proxy_error)?,
                );
                Ok((nginx.clone(), reloader(nginx)))
            }
            #[cfg(feature = "caddy")]
            ProxyConfig::Caddy {
                admin,
                dir,
                http_listen,
                https_listen,
                certificate,
                certificate_key,
                ide_gate,
            } => {
                let config = kws_proxy::caddy::CaddyConfig {
                    ide_gate: Some(*ide_gate),
                    admin: admin.clone(),
                    dir: dir.clone(),
                    http_listen: *http_listen,
                    https_listen: *https_listen,
                    certificate: kws_proxy::CertFiles {
                        chain: certificate.clone(),
                        key: certificate_key.clone(),
                    },
                };
                let caddy = Arc::new(
                    kws_proxy::caddy::CaddyProxy::open(policy, config)
                        .await
                        .map_err(proxy_error)?,
                );
                Ok((caddy.clone(), reloader(caddy)))
            }
            #[allow(unreachable_patterns)]
            ProxyConfig::Nginx { .. } => Err(missing_feature("proxy", "nginx", "nginx")),
            #[allow(unreachable_patterns)]
            ProxyConfig::Caddy { .. } => Err(missing_feature("proxy", "caddy", "caddy")),
        }
    }

    #[cfg(feature = "acme")]
    fn connect_tls(
        &self,
        reload: Option<CertReloader>,
    ) -> Result<Option<Arc<kws_proxy::tls::CertIssuer>>, Error> {
        use kws_proxy::tls::{CertIssuer, ChallTestSrv, Cloudflare, DnsProvider, IssuerConfig};
        let Some(tls) = &self.tls else { return Ok(None) };
        let files = match &self.proxy {
            ProxyConfig::Nginx { certificate, certificate_key, .. }
            | ProxyConfig::Caddy { certificate, certificate_key, .. } => {
                kws_proxy::CertFiles { chain: certificate.clone(), key: certificate_key.clone() }
            }
            ProxyConfig::Memory => {
                return Err(Error::Config(ConfigError::value(
                    "tls",
                    "",
                    "(section)".to_owned(),
                    "a [proxy] that serves the certificate (nginx or caddy)",
                )));
            }
        };
        let dns_error = |e: kws_proxy::tls::DnsError| Error::backend("certificate", e);
        let dns: Arc<dyn DnsProvider> = match &tls.dns {
            super::TlsDns::ChallTestSrv { url } => {
                Arc::new(ChallTestSrv::new(url.clone()).map_err(dns_error)?)
            }
            super::TlsDns::Cloudflare { api, token } => {
                let token = token.read().map_err(|why| {
                    Error::Config(ConfigError::value(
                        "tls",
                        "dns_token_file",
                        "(not shown)".to_owned(),
                        why,
                    ))
                })?;
                Arc::new(Cloudflare::new(api.clone(), token.expose()).map_err(dns_error)?)
            }
        };
        let config = IssuerConfig {
            directory_url: tls.directory.clone(),
            acme_server_root: tls.acme_root.clone(),
            domain: self.platform.domain.clone(),
            contact: tls.contact.clone(),
            account_file: tls.account_file.clone(),
            files,
            renew_within: tls.renew_within,
            propagation_delay: tls.propagation_delay,
            order_timeout: std::time::Duration::from_secs(120),
        };
        Ok(Some(Arc::new(CertIssuer::new(config, dns, reload))))
    }

    async fn connect_databases(
        &self,
    ) -> Result<Backend<Arc<dyn kws_db::DatabaseProvisioner>>, Error> {
        match &self.databases {
            super::DatabasesConfig::None => Ok(Backend::Missing("no PostgreSQL server is configured for databases ([databases] backend = \"postgres\")".to_owned())),
            #[cfg(feature = "postgres")]
            super::DatabasesConfig::Postgres { admin, tenant_endpoint, max_per_tenant } => {
                let options = pg_options("databases", admin)?;
                let mut builder = kws_db::postgres::PostgresProvisioner::builder(options);
                if let Some((host, port)) = tenant_endpoint {
                    builder = builder.tenant_endpoint(host.clone(), *port);
                }
                if let Some(max) = max_per_tenant {
                    builder = builder.max_databases_per_owner(*max);
                }
                let provisioner = builder.build().await.map_err(|e| Error::backend("databases", e))?;
                Ok(Backend::Ready(Arc::new(provisioner)))
            }
            #[cfg(not(feature = "postgres"))]
            super::DatabasesConfig::Postgres { .. } => Err(missing_feature("databases", "postgres", "postgres")),
        }
    }

    async fn connect_exec(&self) -> Backend<Arc<dyn CodeRunner>> {
        if !self.exec.enabled {
            return Backend::Missing(
                "code execution is not configured ([exec] backend = \"docker\")".to_owned(),
            );
        }
        #[cfg(feature = "docker")]
        {
            let runner = if self.exec.docker_exec_runner {
                kws_exec::JobRunner::DockerExec
            } else {
                kws_exec::JobRunner::Supervisor
            };
            let config = kws_exec::ExecConfig {
                runner,
                pool_size: self.exec.pool_size,
                queue_capacity: self.exec.queue_capacity,
                ..kws_exec::ExecConfig::default()
            };
            match kws_exec::ExecEngine::start_local(config).await {
                Ok(engine) => Backend::Ready(Arc::new(engine)),
                Err(e) => {
                    tracing::warn!(error = %e, "code execution is unavailable");
                    Backend::Missing(format!("the exec engine did not start ({e})"))
                }
            }
        }
        #[cfg(not(feature = "docker"))]
        Backend::Missing(
            "this build has no Docker backend for code execution (feature `docker`)".to_owned(),
        )
    }
}

/// The proxy as the ACME issuer's reloader, where the build has ACME.
#[cfg(feature = "acme")]
type CertReloader = Arc<dyn kws_proxy::tls::CertReload>;
#[cfg(not(feature = "acme"))]
type CertReloader = ();

#[cfg(feature = "acme")]
fn reloader<T: kws_proxy::tls::CertReload>(proxy: Arc<T>) -> Option<CertReloader> {
    Some(proxy)
}

#[cfg(all(not(feature = "acme"), any(feature = "nginx", feature = "caddy")))]
fn reloader<T>(_proxy: Arc<T>) -> Option<CertReloader> {
    None
}

#[cfg(feature = "postgres")]
fn pg_options(section: &str, url: &PgUrl) -> Result<sqlx::postgres::PgConnectOptions, Error> {
    let key = if section == "databases" { "admin_url" } else { "url" };
    let mut options = sqlx::postgres::PgConnectOptions::from_str(&url.url).map_err(|e| {
        Error::Config(ConfigError::value(
            section,
            key,
            "(a URL, not shown)".to_owned(),
            format!("a postgres:// URL ({e})"),
        ))
    })?;
    if let Some(source) = &url.password {
        let secret = source.read().map_err(|why| {
            Error::Config(ConfigError::value(section, "password", "(not shown)".to_owned(), why))
        })?;
        options = options.password(secret.expose());
    }
    Ok(options)
}

/// A pool of at most `max` connections to `url` (the config's `section`, named in errors),
/// each checked before use; the password from its source.
#[cfg(feature = "postgres")]
pub async fn pg_pool(section: &str, url: &PgUrl, max: u32) -> Result<sqlx::PgPool, Error> {
    let options = pg_options(section, url)?;
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(max)
        .test_before_acquire(true)
        .connect_with(options)
        .await
        .map_err(|e| Error::backend("store", e))
}

#[cfg(not(feature = "postgres"))]
#[allow(dead_code)]
fn pg_options(_section: &str, _url: &PgUrl) {}
