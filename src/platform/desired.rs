//! What the engines should hold, derived from the stores: the host firewall (owner bridges
//! isolated, each VPN peer reaching only its tenant's instances) and the proxy routes (an IDE
//! route per instance, a route per app).

use std::{collections::HashMap, net::SocketAddr};

use ipnet::IpNet;
use kws_core::OwnerId;
use kws_hostnet::{ApplyReport, HostNetState, PeerIsolation, PeerRule};
use kws_proxy::Route;

use crate::platform::{
    Error, Platform, Scope,
    model::{AppSpec, InstanceSpec},
    store::{Object, PlatformStoreExt},
};

impl Platform {
    /// The firewall as the stores want it: the operator's base network, every owner bridge of
    /// the runtime isolated from the others, and each active VPN peer allowed to its tenant's
    /// instance subnet only (a peer of a tenant without instances reaches nothing).
    pub(crate) async fn desired_network(&self) -> Result<HostNetState, Error> {
        let mut spec = self.settings().base_network.clone();
        let networks = match self.runtime() {
            Ok(runtime) => runtime.networks().await.map_err(|e| Error::backend("runtime", e))?,
            Err(_) => Vec::new(),
        };
        let mut subnets: HashMap<&OwnerId, Vec<IpNet>> = HashMap::new();
        for net in &networks {
            subnets.entry(&net.owner).or_default().push(IpNet::V4(net.subnet));
            if let Some(bridge) = &net.bridge {
                if !spec.isolated_bridges.contains(bridge) {
                    spec.isolated_bridges.push(bridge.clone());
                }
            }
        }
        let vpn = self.vpn();
        let interface = vpn.settings().interface.clone();
        let now = chrono::Utc::now();
        let peers = vpn.store().list(&interface).await.map_err(|e| Error::backend("vpn", e))?;
        let rules = peers
            .iter()
            .filter(|p| p.is_active(now))
            .map(|p| PeerRule {
                address: p.ipv4.into(),
                allowed: subnets.get(&p.owner).cloned().unwrap_or_default(),
            })
            .collect();
        spec.isolation = Some(PeerIsolation { interface, peers: rules });
        HostNetState::new(spec).map_err(|e| Error::backend("firewall", e))
    }

    /// Makes the firewall match the stores (one change at a time in this process; the
    /// backend replaces kws's table in one atomic batch).
    pub(crate) async fn apply_firewall(&self) -> Result<ApplyReport, Error> {
        let _one = self.firewall_lock().lock().await;
        let desired = self.desired_network().await?;
        self.hostnet().apply(&desired).await.map_err(|e| Error::backend("firewall", e))
    }

    /// The IDE route of an instance, once it has an address.
    pub(crate) fn ide_route(
        &self,
        instance: &Object<InstanceSpec>,
    ) -> Result<Option<Route>, Error> {
        let (Some(address), Some(port)) = (instance.spec.address, instance.spec.ide_port) else {
            return Ok(None);
        };
        let host = self.hostname(&instance.meta.name)?;
        let route = Route::ide(host, SocketAddr::from((address, port)));
        Ok(Some(route.with_tls(self.settings().tls)))
    }

    /// The route of an app to its instance, once the instance has an address.
    pub(crate) fn app_route(
        &self,
        app: &Object<AppSpec>,
        instance: &Object<InstanceSpec>,
    ) -> Result<Option<Route>, Error> {
        let Some(address) = instance.spec.address else { return Ok(None) };
        let host = self.hostname(&app.meta.name)?;
        let route = Route::app(host, SocketAddr::from((address, app.spec.port)));
        Ok(Some(route.with_tls(self.settings().tls)))
    }

    /// Every route the stores want, sorted by host.
    pub(crate) async fn desired_routes(&self) -> Result<Vec<Route>, Error> {
        let scope = Scope::Operator;
        let instances = self.store().list_all::<InstanceSpec>(&scope, None).await?;
        let apps = self.store().list_all::<AppSpec>(&scope, None).await?;
        let by_key: HashMap<(&OwnerId, &str), &Object<InstanceSpec>> =
            instances.iter().map(|i| ((&i.meta.tenant, i.meta.name.as_str()), i)).collect();
        let mut routes = Vec::with_capacity(instances.len() + apps.len());
        for instance in &instances {
            routes.extend(self.ide_route(instance)?);
        }
        for app in &apps {
            if let Some(instance) = by_key.get(&(&app.meta.tenant, app.spec.instance.as_str())) {
                routes.extend(self.app_route(app, instance)?);
            }
        }
        routes.sort_by(|a, b| a.host().cmp(b.host()));
        Ok(routes)
    }
}
