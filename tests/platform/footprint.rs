//! Everything a flow can leave behind, counted on the real backends.

use std::collections::HashMap;

use bollard::query_parameters::{ListContainersOptions, ListNetworksOptions, ListVolumesOptions};
use kws::{
    core::OwnerId,
    platform::{Scope, store::Kind},
    runtime::docker::LABEL_MANAGED,
};

use super::lab::Lab;

/// What exists of a tenant (and of the shared parts) right now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Footprint {
    pub leases: i64,
    pub peer_rows: usize,
    pub interface_peers: usize,
    pub nft_peer_rules: usize,
    pub nft_bridges: usize,
    pub containers: usize,
    pub networks: usize,
    pub volumes: usize,
    pub routes: usize,
    pub served_routes: usize,
    pub roles: i64,
    pub databases: i64,
    pub objects: usize,
}

impl Lab {
    /// The footprint of `tenant` (roles and databases are cluster-wide: counted by its name).
    pub(crate) async fn footprint(&self, tenant: &OwnerId) -> Footprint {
        let p = self.platform();
        let leases: (i64,) = sqlx::query_as("SELECT count(*) FROM kws_ipam.leases")
            .fetch_one(&self.db.pool().await)
            .await
            .expect("leases");
        let vpn = p.vpn();
        let peer_rows = vpn.store().list(&vpn.settings().interface).await.expect("peers").len();
        let interface_peers = vpn.device().get().await.expect("interface").peers.len();
        let nft = p.hostnet().current().await.expect("nft");
        let nft_peer_rules =
            nft.isolation.as_ref().map_or(0, |i| i.peers.iter().map(|r| r.allowed.len()).sum());
        let docker = self.engine.client();
        let labels = HashMap::from([("label".to_owned(), vec![format!("{LABEL_MANAGED}=true")])]);
        let containers = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(labels.clone()),
                ..Default::default()
            }))
            .await
            .expect("containers")
            .len();
        let networks = docker
            .list_networks(Some(ListNetworksOptions { filters: Some(labels.clone()) }))
            .await
            .expect("networks")
            .len();
        let volumes = docker
            .list_volumes(Some(ListVolumesOptions { filters: Some(labels) }))
            .await
            .expect("volumes")
            .volumes
            .unwrap_or_default()
            .len();
        let like = format!("kws\\_{}\\_%", tenant.as_str().replace('-', "\\_"));
        let like_dash = format!("kws\\_{}%", tenant.as_str());
        let roles: (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1 OR rolname LIKE $2",
        )
        .bind(&like)
        .bind(&like_dash)
        .fetch_one(&self.admin)
        .await
        .expect("roles");
        let databases: (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_database WHERE datname LIKE $1 OR datname LIKE $2",
        )
        .bind(&like)
        .bind(&like_dash)
        .fetch_one(&self.admin)
        .await
        .expect("databases");
        let mut objects = 0;
        for kind in Kind::ALL {
            let page = kws::platform::store::Page::first(1000);
            objects += p
                .store()
                .list_objects(&Scope::Operator, kind, None, &page)
                .await
                .expect("objects")
                .len();
        }
        Footprint {
            leases: leases.0,
            peer_rows,
            interface_peers,
            nft_peer_rules,
            nft_bridges: nft.isolated_bridges.len(),
            containers,
            networks,
            volumes,
            routes: p.proxy().routes().await.expect("routes").len(),
            served_routes: self.served_hosts().len(),
            roles: roles.0,
            databases: databases.0,
            objects,
        }
    }
}
