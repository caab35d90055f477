//! What a Platform is made of: its settings and one backend per capability.

use std::{fmt, sync::Arc, time::Duration};

use ipnet::{IpNet, Ipv4Net};
use kws_core::{DnsLabel, Domain};
use kws_db::DatabaseProvisioner;
use kws_hostnet::{HostNetSpec, HostNetwork, PlanHostNetwork};
use kws_ipam::{IpAllocator, MemoryAllocator};
use kws_proxy::{MemoryProxy, ProxyWriter, RoutePolicy};
use kws_runtime::{ImageRef, MemoryRuntime, Runtime, VolumePolicy};
use kws_wg::{Endpoint, MemoryDevice, MemoryPeerStore, PrivateKey, VpnService, VpnSettings};

use crate::platform::{
    CodeRunner, Error,
    model::InstanceResources,
    store::{MemoryStore, PlatformStore, Quotas},
};

/// A backend that may be missing: instances need a container engine, databases a PostgreSQL
/// server, code execution an engine with its images. A missing one makes its feature answer
/// `Unavailable` with the reason; the other features work.
#[derive(Clone)]
pub enum Backend<T> {
    /// Configured and reachable.
    Ready(T),
    /// Not there, and why (for the operator).
    Missing(String),
}

impl<T: fmt::Debug> fmt::Debug for Backend<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Ready(t) => f.debug_tuple("Ready").field(t).finish(),
            Backend::Missing(why) => f.debug_tuple("Missing").field(why).finish(),
        }
    }
}

impl<T> Backend<T> {
    /// The backend, or `Unavailable { feature }` with the reason.
    pub fn get(&self, feature: &'static str) -> Result<&T, Error> {
        match self {
            Backend::Ready(t) => Ok(t),
            Backend::Missing(why) => Err(Error::Unavailable { feature, reason: why.clone() }),
        }
    }

    /// Whether it is there.
    pub fn is_ready(&self) -> bool {
        matches!(self, Backend::Ready(_))
    }
}

/// The IDE every instance runs unless its spec names another image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdeSettings {
    /// Its image (`None`: the runtime's own default).
    pub image: Option<ImageRef>,
    /// The port it listens on in the instance.
    pub port: u16,
}

/// How the Platform runs its flows.
#[derive(Debug, Clone)]
pub struct PlatformSettings {
    /// Apps and IDEs live at `<name>.<domain>`.
    pub domain: Domain,
    /// Names no instance or app may take (`www`, `api`, the dashboard's own host).
    pub reserved_names: Vec<DnsLabel>,
    /// The IDE.
    pub ide: IdeSettings,
    /// Limits of an instance that asks for none.
    pub instance_defaults: InstanceResources,
    /// The largest limits one instance may ask for.
    pub instance_max: InstanceResources,
    /// Quotas of a tenant created without its own.
    pub default_quotas: Quotas,
    /// The host network beside what the Platform derives (bridges, forwarding, masquerade,
    /// port forwards of the operator's config). IPv4 forwarding is on by default.
    pub base_network: HostNetSpec,
    /// The prefixes instances live in (the runtime's owner range): VPN clients route them into
    /// the tunnel, routes may point into them.
    pub instance_range: Ipv4Net,
    /// What `remove_instance` does with the workspace.
    pub workspace_on_remove: VolumePolicy,
    /// How long an operation may run before it is undone.
    pub operation_deadline: Duration,
    /// How long a process's claim on its operations lasts without renewal; a crashed
    /// process's operations are reaped after it.
    pub operation_lease: Duration,
    /// How often the background reconcile runs (it also runs on demand).
    pub reconcile_every: Duration,
    /// How many events are kept for resuming streams.
    pub event_window: usize,
    /// Whether routes are served over HTTPS (the wildcard certificate).
    pub tls: bool,
    /// The port browsers reach routes on, when it is not the scheme's own (443, or 80
    /// without TLS): the proxy behind a port forward, or in a test.
    pub public_port: Option<u16>,
}

impl PlatformSettings {
    /// The public URL of `<name>.<domain>` followed by `path` (which starts with `/`): the
    /// scheme of `tls`, and `public_port` when there is one.
    pub fn public_url(&self, name: &str, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let port = self.public_port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("{scheme}://{name}.{}{port}{path}", self.domain)
    }

    /// Settings for `domain` with every default: the runtime's IDE image on port 8080,
    /// instances of 1 CPU and 1 GiB (at most 4 CPUs and 8 GiB), tenants of at most 5
    /// instances, 4 CPUs, 8 GiB, 10 devices, 10 apps and 5 databases, instances in
    /// `10.213.0.0/16`, workspaces deleted with their instance, operations given 5 minutes
    /// with a 10-second lease, reconcile every 30 s, 10,000 events kept, HTTPS on.
    pub fn new(domain: Domain) -> Self {
        Self {
            domain,
            reserved_names: ["www", "api", "dashboard", "kws", "admin", "mail"]
                .iter()
                .filter_map(|n| DnsLabel::parse(n).ok())
                .collect(),
            ide: IdeSettings { image: None, port: 8080 },
            instance_defaults: InstanceResources { cpu_millis: 1000, memory_mb: 1024 },
            instance_max: InstanceResources { cpu_millis: 4000, memory_mb: 8192 },
            default_quotas: Quotas {
                instances: Some(5),
                cpu_millis: Some(4000),
                memory_mb: Some(8192),
                devices: Some(10),
                apps: Some(10),
                databases: Some(5),
            },
            // Forwarding on: VPN peers reach instances through the host (Docker turns it on
            // too; a state without it would turn it off again).
            base_network: HostNetSpec {
                forwarding: kws_hostnet::Forwarding { ipv4: true, ipv6: false },
                ..HostNetSpec::default()
            },
            instance_range: Ipv4Net::new(std::net::Ipv4Addr::new(10, 213, 0, 0), 16)
                .unwrap_or_default(),
            workspace_on_remove: VolumePolicy::Delete,
            operation_deadline: Duration::from_secs(300),
            operation_lease: Duration::from_secs(10),
            reconcile_every: Duration::from_secs(30),
            event_window: 10_000,
            tls: true,
            public_port: None,
        }
    }

    /// The route policy the proxy must be built with: the domain, upstreams in the instance
    /// range only.
    pub fn route_policy(&self) -> RoutePolicy {
        RoutePolicy::new(self.domain.clone(), [IpNet::V4(self.instance_range)])
    }
}

/// One backend per capability, and the settings.
#[derive(Debug)]
pub struct PlatformParts {
    /// How flows run.
    pub settings: PlatformSettings,
    /// The store of record.
    pub store: Arc<dyn PlatformStore>,
    /// The address allocator, shared by the VPN and the runtime.
    pub allocator: Arc<dyn IpAllocator>,
    /// The VPN (its allocator must be `allocator`).
    pub vpn: VpnService,
    /// The host network.
    pub hostnet: Arc<dyn HostNetwork>,
    /// The runtime (its allocator must be `allocator`).
    pub runtime: Backend<Arc<dyn Runtime>>,
    /// The proxy (its policy should be `settings.route_policy()`).
    pub proxy: Arc<dyn ProxyWriter>,
    /// The wildcard certificate's issuer, when ACME is configured.
    #[cfg(feature = "acme")]
    pub certs: Option<Arc<kws_proxy::tls::CertIssuer>>,
    /// The database provisioner.
    pub databases: Backend<Arc<dyn DatabaseProvisioner>>,
    /// The code-execution engine.
    pub exec: Backend<Arc<dyn CodeRunner>>,
}

impl PlatformParts {
    /// The parts of [`Platform::embedded`](crate::platform::Platform::embedded), on the
    /// domain `kws.localhost`.
    pub async fn embedded() -> Result<Self, Error> {
        let domain: Domain = "kws.localhost".parse().map_err(|e| Error::invalid("domain", e))?;
        let settings = PlatformSettings::new(domain);
        let allocator: Arc<dyn IpAllocator> = Arc::new(MemoryAllocator::new());
        let vpn = embedded_vpn(allocator.clone(), &settings).await?;
        let image = ImageRef::parse("kws/ide:embedded").map_err(|e| Error::invalid("image", e))?;
        let runtime =
            MemoryRuntime::with_range(allocator.clone(), image, settings.instance_range, 24);
        Ok(Self {
            store: Arc::new(MemoryStore::new()),
            allocator,
            vpn,
            hostnet: Arc::new(PlanHostNetwork::new()),
            runtime: Backend::Ready(Arc::new(runtime)),
            proxy: Arc::new(MemoryProxy::new(settings.route_policy())),
            #[cfg(feature = "acme")]
            certs: None,
            databases: Backend::Missing(
                "no PostgreSQL server is configured ([databases] in the config)".to_owned(),
            ),
            exec: Backend::Missing(
                "no container engine is configured for code execution ([exec] in the config)"
                    .to_owned(),
            ),
            settings,
        })
    }
}

/// An in-memory VPN on `wg0`, `10.8.0.0/24`, routing the instance range.
async fn embedded_vpn(
    allocator: Arc<dyn IpAllocator>,
    settings: &PlatformSettings,
) -> Result<VpnService, Error> {
    let vpn_error = |e: kws_wg::Error| Error::backend("vpn", e);
    let interface = "wg0".parse().map_err(|e| Error::invalid("vpn.interface", e))?;
    let key = PrivateKey::generate().map_err(|e| Error::backend("vpn", e))?;
    let endpoint = Endpoint::parse(&format!("vpn.{}:51820", settings.domain)).map_err(vpn_error)?;
    let subnet = "10.8.0.0/24".parse().map_err(|e| Error::invalid("vpn.subnet", e))?;
    let mut vpn_settings = VpnSettings::new(interface, key, endpoint, subnet).map_err(vpn_error)?;
    vpn_settings.routed_subnets = vec![IpNet::V4(settings.instance_range)];
    let device = Arc::new(MemoryDevice::new(vpn_settings.interface.clone()));
    let vpn = VpnService::new(vpn_settings, allocator, Arc::new(MemoryPeerStore::new()), device)
        .map_err(vpn_error)?;
    vpn.create_pools().await.map_err(vpn_error)?;
    Ok(vpn)
}
