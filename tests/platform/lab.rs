//! A Platform on real parts, all of whose network lives in one namespace the test made: a
//! Docker engine of its own there (its bridges, Docker's and kws's netfilter rules), kws's
//! nftables table written by the Linux backend there, a wireguard-go server interface there,
//! a private nginx there serving the wildcard certificate, and PostgreSQL (the store, the
//! allocator, the peers and the databases) reached from inside through a forwarder on a
//! local address of the namespace.

#![allow(dead_code, unreachable_pub)]

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

#[allow(unused_imports)]
use kws::platform::store::PlatformStoreExt;
use kws::{
    core::{DnsLabel, OwnerId},
    db::postgres::PostgresProvisioner,
    hostnet::{HostNetwork, LinuxHostNetwork},
    ipam::PostgresAllocator,
    platform::{Backend, Platform, PlatformParts, PlatformSettings, Scope, store::PlatformStore},
    proxy::{
        CertFiles,
        nginx::{LocalNginx, NginxProxy, self_signed_certificate},
    },
    runtime::{
        ImageRef,
        docker::{DockerConfig, DockerRuntime, IdeConfig},
    },
    wg::{
        Endpoint, PostgresPeerStore, PrivateKey, UapiDevice, VpnService, VpnSettings, WireguardGo,
    },
};
use kws_testenv::{NetnsDocker, TestDb, random_suffix};
use sqlx::postgres::PgConnectOptions;

pub const BUSYBOX: &str = "kws-test/busybox:1";
pub const PYTHON: &str = "kws-test/python3:1";
pub const IDE_PORT: u16 = 8080;
pub const DOMAIN: &str = "kws.test";
/// The namespace's address (on its loopback) where tenants reach PostgreSQL.
pub const DB_ADDR: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 1);
/// The server's end of the VPN's veth, in the engine's namespace.
pub const VPN_VETH: &str = "10.99.0.1";

/// What the lab is made of.
pub struct Lab {
    /// The Platform (`None` while a child process holds the engines: see `release`).
    platform: Option<Platform>,
    pub db: TestDb,
    /// The store, on its own (it outlives the Platform's restarts).
    pub store: Arc<dyn PlatformStore>,
    pub admin: sqlx::PgPool,
    pub nginx: LocalNginx,
    pub tmp: tempfile::TempDir,
    /// The self-signed wildcard certificate nginx serves (the CA to trust).
    pub ca: PathBuf,
    pub vpn_port: u16,
    /// How another process builds the same Platform.
    pub spec: LabSpec,
    forwarder: tokio::task::JoinHandle<()>,
    admin_forwarder: tokio::task::JoinHandle<()>,
    _wg: kws::wg::device::RunningInterface,
    // Last: the engine (and its namespace) outlives what lives in it.
    pub engine: NetnsDocker,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.forwarder.abort();
        self.admin_forwarder.abort();
    }
}

/// A fresh tenant id (roles are cluster-wide: tests sharing a server must not collide).
pub fn tenant(stem: &str) -> OwnerId {
    OwnerId::parse(&format!("{stem}-{}", random_suffix(5))).expect("tenant id")
}

impl Lab {
    /// Starts everything; `None` (skipped loudly) without the services, failing under
    /// `KWS_TEST_REQUIRE=1`.
    pub async fn start() -> Option<Self> {
        Self::start_with(|_| {}).await
    }

    /// The lab's Platform.
    pub fn platform(&self) -> &Platform {
        self.platform.as_ref().expect("the lab's Platform is released")
    }

    /// Drops the Platform, so another process can drive the engines (nginx's folder has one
    /// writer at a time).
    pub fn release(&mut self) {
        self.platform = None;
    }

    /// A new Platform on the same stores and engines, as a restarted process builds it.
    pub async fn restart(&mut self) -> &Platform {
        self.platform = None;
        self.platform = Some(Platform::new(self.spec.parts(|_| {}).await));
        self.platform()
    }

    /// Starts everything with `tune` applied to the settings.
    pub async fn start_with(tune: fn(&mut PlatformSettings)) -> Option<Self> {
        let host = kws_testenv::docker().await?.negotiate_version().await.expect("API version");
        let db = kws_testenv::postgres().await?;
        let engine = NetnsDocker::start().await?;
        for image in [BUSYBOX, PYTHON] {
            engine.copy_image(&host, image).await;
        }
        let ns = engine.netns();
        // On the namespace's loopback: a local address the containers reach through their
        // gateway (the kernel here has no dummy links).
        ns.run(["ip", "address", "add", &format!("{DB_ADDR}/32"), "dev", "lo"]);
        let (forwarder, db_port) = forward_postgres(ns, &db);
        let tmp = tempfile::tempdir().expect("tempdir");
        let certs =
            self_signed_certificate(&tmp.path().join("certs"), &DOMAIN.parse().expect("domain"))
                .expect("certificate");
        // A copy: the chain file is the certificate nginx serves, which an issuer replaces.
        let ca = tmp.path().join("self-signed-ca.pem");
        std::fs::copy(&certs.chain, &ca).expect("copy the self-signed certificate");
        let prefix = tmp.path().join("nginx");
        let nginx = ns.enter(|| LocalNginx::start(&prefix, certs.clone())).expect("nginx");
        let admin_forwarder = forward_nginx_admin(ns, nginx.config().admin_listen);
        let wg_interface = format!("kwsw{}", random_suffix(6));
        let vpn_port = 20_000 + u16::from_str_radix(&random_suffix(3), 16).expect("hex") * 8;
        let wg_key = PrivateKey::generate().expect("key");
        let label = DnsLabel::parse(ns.name()).expect("netns label");
        let spec = LabSpec {
            db_url: db.url().to_owned(),
            admin_url: db.admin_url().to_owned(),
            docker_socket: engine.socket().to_path_buf(),
            netns: ns.name().to_owned(),
            nginx_prefix: prefix.clone(),
            nginx_http: nginx.config().http_listen,
            nginx_https: nginx.config().https_listen,
            nginx_admin: nginx.config().admin_listen,
            chain: certs.chain.clone(),
            key: certs.key.clone(),
            wg_interface: wg_interface.clone(),
            wg_key: wg_key.to_base64(),
            vpn_port,
            db_port,
            pebble: None,
        };
        let wg = WireguardGo::new(wg_interface.parse().expect("ifname"))
            .netns(label)
            .address(
                vpn_settings(&spec, &PlatformSettings::new(DOMAIN.parse().expect("domain")))
                    .server_address_v4(),
            )
            .start()
            .await
            .expect("wireguard-go");
        let platform = Platform::new(spec.parts(tune).await);
        platform.start().await.expect("start");
        let admin = sqlx::PgPool::connect(db.admin_url()).await.expect("admin pool");
        let store = spec.store().await;
        Some(Self {
            platform: Some(platform),
            store,
            db,
            admin,
            nginx,
            tmp,
            ca,
            vpn_port,
            spec,
            forwarder,
            admin_forwarder,
            _wg: wg,
            engine,
        })
    }

    /// A new tenant with a fresh id and the default quotas.
    pub async fn tenant_of(&self, stem: &str) -> OwnerId {
        let id = tenant(stem);
        self.platform()
            .create_tenant(&Scope::Operator, id.clone(), stem, None)
            .await
            .expect("tenant");
        id
    }

    /// `GET https://<label>.kws.test/` from inside the namespace, through nginx; the status
    /// line and body, or curl's error.
    pub fn https_get(&self, label: &str, path: &str) -> (bool, String) {
        self.https_get_trusting(label, path, &self.ca)
    }

    /// As `https_get`, trusting `ca` (pebble's root, once it issued the certificate).
    pub fn https_get_trusting(
        &self,
        label: &str,
        path: &str,
        ca: &std::path::Path,
    ) -> (bool, String) {
        let https = self.nginx.config().https_listen;
        let host = format!("{label}.{DOMAIN}");
        let resolve = format!("{host}:{}:{}", https.port(), https.ip());
        let url = format!("https://{host}:{}{path}", https.port());
        let out = self.engine.netns().exec([
            "curl",
            "-sS",
            "--max-time",
            "5",
            "--cacert",
            ca.to_str().expect("utf-8"),
            "--resolve",
            &resolve,
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            &url,
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    /// Makes the wildcard certificate come from `pebble` (a restart of the Platform on the
    /// same engines; the next reconcile issues it).
    pub async fn use_pebble(&mut self, pebble: &kws_testenv::Pebble) -> &Platform {
        self.spec.pebble = Some(PebbleSpec {
            directory: pebble.directory.clone(),
            challtestsrv: pebble.challtestsrv.clone(),
            tls_root: pebble.tls_root.clone(),
            account: self.tmp.path().join("acme-account.json"),
        });
        self.restart().await
    }

    /// The hosts nginx's own table serves, read from its admin server.
    pub fn served_hosts(&self) -> Vec<String> {
        let config = self.nginx.config();
        let conf = std::fs::read_to_string(config.dir.join("admin.conf")).expect("admin.conf");
        let token = conf.split("Bearer ").nth(1).and_then(|t| t.split('"').next()).expect("token");
        let out = self.engine.netns().exec([
            "curl",
            "-sS",
            "-H",
            &format!("Authorization: Bearer {token}"),
            &format!("http://{}/kws/routes", config.admin_listen),
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut hosts: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("+ "))
            .filter_map(|l| l.split(' ').next())
            .map(str::to_owned)
            .collect();
        hosts.sort();
        hosts
    }

    /// Removes `host`'s route from nginx's table by hand (as an operator's mistake would).
    pub fn remove_served_by_hand(&self, host: &str) {
        let config = self.nginx.config();
        let conf = std::fs::read_to_string(config.dir.join("admin.conf")).expect("admin.conf");
        let token = conf.split("Bearer ").nth(1).and_then(|t| t.split('"').next()).expect("token");
        self.engine.netns().run([
            "curl",
            "-sS",
            "--fail",
            "-H",
            &format!("Authorization: Bearer {token}"),
            "--data-binary",
            &format!("- {host}\n"),
            &format!("http://{}/kws/routes", config.admin_listen),
        ]);
    }
}

/// Everything another process needs to build the lab's Platform on the same stores and
/// engines (passed to a child as JSON).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LabSpec {
    pub db_url: String,
    pub admin_url: String,
    pub docker_socket: PathBuf,
    pub netns: String,
    pub nginx_prefix: PathBuf,
    pub nginx_http: SocketAddr,
    pub nginx_https: SocketAddr,
    pub nginx_admin: SocketAddr,
    pub chain: PathBuf,
    pub key: PathBuf,
    pub wg_interface: String,
    pub wg_key: String,
    pub vpn_port: u16,
    pub db_port: u16,
    /// The ACME server the certificate comes from, once the test started one.
    pub pebble: Option<PebbleSpec>,
}

/// Where a test's pebble answers.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PebbleSpec {
    pub directory: String,
    pub challtestsrv: String,
    pub tls_root: PathBuf,
    pub account: PathBuf,
}

fn vpn_settings(spec: &LabSpec, settings: &PlatformSettings) -> VpnSettings {
    let endpoint = Endpoint::parse(&format!("{VPN_VETH}:{}", spec.vpn_port)).expect("endpoint");
    let key = PrivateKey::from_base64(&spec.wg_key).expect("key");
    let interface = spec.wg_interface.parse().expect("ifname");
    let mut vpn = VpnSettings::new(interface, key, endpoint, "10.8.0.0/20".parse().expect("net"))
        .expect("settings");
    vpn.routed_subnets = vec![ipnet::IpNet::V4(settings.instance_range)];
    vpn
}

impl LabSpec {
    /// The store on the lab's database.
    pub async fn store(&self) -> Arc<dyn PlatformStore> {
        let pool = sqlx::PgPool::connect(&self.db_url).await.expect("pool");
        Arc::new(kws::platform::store::PostgresStore::connect(pool).await.expect("store"))
    }

    /// The lab's settings, with `tune` applied.
    pub fn settings(&self, tune: fn(&mut PlatformSettings)) -> PlatformSettings {
        let mut settings = PlatformSettings::new(DOMAIN.parse().expect("domain"));
        settings.ide.image = Some(ImageRef::parse(BUSYBOX).expect("image"));
        settings.ide.port = IDE_PORT;
        settings.instance_defaults.memory_mb = 64;
        settings.operation_lease = Duration::from_secs(2);
        settings.reconcile_every = Duration::from_secs(3600);
        tune(&mut settings);
        settings
    }

    /// The Platform's parts on the lab's services.
    pub async fn parts(&self, tune: fn(&mut PlatformSettings)) -> PlatformParts {
        let settings = self.settings(tune);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(16)
            .connect(&self.db_url)
            .await
            .expect("pool");
        let allocator = Arc::new(PostgresAllocator::new(pool.clone()).await.expect("allocator"));
        let peers = PostgresPeerStore::connect(pool.clone()).await.expect("peers");
        let vpn = vpn_settings(self, &settings);
        let device = UapiDevice::new(vpn.interface.clone());
        let vpn = VpnService::new(vpn, allocator.clone(), Arc::new(peers), Arc::new(device))
            .expect("vpn");
        vpn.create_pools().await.expect("pools");
        let hostnet: Arc<dyn HostNetwork> = Arc::new(
            kws_testenv::Netns::enter_named(&self.netns, LinuxHostNetwork::new).expect("hostnet"),
        );
        let client = bollard::Docker::connect_with_unix(
            &format!("unix://{}", self.docker_socket.display()),
            120,
            bollard::API_DEFAULT_VERSION,
        )
        .expect("engine client");
        let mut docker = DockerConfig::new(IdeConfig {
            image: ImageRef::parse(BUSYBOX).expect("image"),
            port: IDE_PORT,
        });
        docker.extra_labels = kws_testenv::test_labels().into_iter().collect();
        docker.owner_range = settings.instance_range;
        docker.stop_timeout = Duration::from_secs(2);
        let runtime =
            DockerRuntime::with_client(client, allocator.clone(), docker).await.expect("runtime");
        let ports = [self.nginx_http.port(), self.nginx_https.port(), self.nginx_admin.port()];
        let certificate = CertFiles { chain: self.chain.clone(), key: self.key.clone() };
        let nginx = LocalNginx::config_at(&self.nginx_prefix, ports, certificate);
        let proxy =
            Arc::new(NginxProxy::open(settings.route_policy(), nginx).await.expect("proxy"));
        let certs = self.pebble.as_ref().map(|pebble| {
            let config = kws::proxy::tls::IssuerConfig {
                directory_url: pebble.directory.clone(),
                acme_server_root: Some(pebble.tls_root.clone()),
                domain: DOMAIN.parse().expect("domain"),
                contact: vec![format!("mailto:ops@{DOMAIN}")],
                account_file: pebble.account.clone(),
                files: CertFiles { chain: self.chain.clone(), key: self.key.clone() },
                renew_within: kws::proxy::tls::IssuerConfig::days(30),
                propagation_delay: Duration::ZERO,
                order_timeout: Duration::from_secs(60),
            };
            let dns = kws::proxy::tls::ChallTestSrv::new(pebble.challtestsrv.clone())
                .expect("challtestsrv");
            Arc::new(kws::proxy::tls::CertIssuer::new(config, Arc::new(dns), Some(proxy.clone())))
        });
        let admin: PgConnectOptions = self.admin_url.parse().expect("admin url");
        let provisioner = PostgresProvisioner::builder(admin)
            .tenant_endpoint(DB_ADDR.to_string(), self.db_port)
            .build()
            .await
            .expect("provisioner");
        let store = kws::platform::store::PostgresStore::connect(pool).await.expect("store");
        PlatformParts {
            settings,
            store: Arc::new(store) as Arc<dyn PlatformStore>,
            allocator,
            vpn,
            hostnet,
            runtime: Backend::Ready(Arc::new(runtime)),
            proxy,
            certs,
            databases: Backend::Ready(Arc::new(provisioner)),
            exec: Backend::Missing("not in this lab".to_owned()),
        }
    }
}

/// A listener on `DB_ADDR` inside the namespace, forwarded to the test PostgreSQL server on
/// the machine's loopback.
fn forward_postgres(ns: &kws_testenv::Netns, db: &TestDb) -> (tokio::task::JoinHandle<()>, u16) {
    let listener = ns.enter(|| std::net::TcpListener::bind((DB_ADDR, 0))).expect("bind forwarder");
    let port = listener.local_addr().expect("addr").port();
    let url: url::Url = db.admin_url().parse().expect("admin url");
    let target = SocketAddr::from((
        url.host_str().and_then(|h| h.parse::<Ipv4Addr>().ok()).unwrap_or(Ipv4Addr::LOCALHOST),
        url.port().unwrap_or(5432),
    ));
    (kws_testenv::forward(listener, target, None), port)
}

/// nginx's admin server listens on the namespace's loopback; kws (here, and in a child
/// process) reaches it at the same address and port on the machine's loopback.
fn forward_nginx_admin(ns: &kws_testenv::Netns, admin: SocketAddr) -> tokio::task::JoinHandle<()> {
    let listener =
        std::net::TcpListener::bind(admin).expect("bind the admin forwarder on loopback");
    kws_testenv::forward(listener, admin, Some(ns.name().to_owned()))
}
