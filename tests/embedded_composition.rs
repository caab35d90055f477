//! The capability crates composed on embedded defaults, as the Platform will compose them: one
//! allocator shared by the VPN and the instance networks, the VPN's client configs routing the
//! instance subnet, and IDE routes only to instance addresses.

use std::{net::SocketAddr, sync::Arc};

use kws::{
    core::{Domain, OwnerId},
    ipam::{IpAllocator, LeaseOwner, MemoryAllocator, PoolSpec},
    proxy::{MemoryProxy, ProxyError, ProxyWriter, Route, RoutePolicy},
    wg::{
        DeviceRequest, Endpoint, MemoryDevice, MemoryPeerStore, PrivateKey, VpnService, VpnSettings,
    },
};

const INSTANCES: &str = "10.213.0.0/16";

fn vpn_settings(subnet: &str) -> VpnSettings {
    let mut settings = VpnSettings::new(
        "wg0".parse().expect("ifname"),
        PrivateKey::generate().expect("key"),
        Endpoint::parse("vpn.example.test:51820").expect("endpoint"),
        subnet.parse().expect("subnet"),
    )
    .expect("settings");
    settings.routed_subnets = vec![INSTANCES.parse().expect("instances")];
    settings
}

fn vpn(allocator: Arc<dyn IpAllocator>, settings: VpnSettings) -> VpnService {
    let device = Arc::new(MemoryDevice::new(settings.interface.clone()));
    VpnService::new(settings, allocator, Arc::new(MemoryPeerStore::new()), device).expect("vpn")
}

#[tokio::test]
async fn one_allocator_serves_the_vpn_and_the_instances_without_overlap() {
    let allocator: Arc<dyn IpAllocator> = Arc::new(MemoryAllocator::new());
    let instances = "instances".parse().expect("label");
    allocator
        .create_pool(PoolSpec::new(instances, INSTANCES.parse().expect("prefix")))
        .await
        .expect("instance pool");

    // A VPN subnet inside the instance range is refused by the shared allocator, and the
    // refused VPN leaves no pool behind.
    let clash = vpn(allocator.clone(), vpn_settings("10.213.8.0/24"));
    let err = clash.create_pools().await.expect_err("overlapping VPN subnet");
    assert!(err.to_string().contains("overlaps"), "{err}");
    let left = allocator.usage(&clash.settings().pool_v4).await;
    assert!(matches!(left, Err(kws::ipam::Error::PoolNotFound(_))), "{left:?}");

    let service = vpn(allocator.clone(), vpn_settings("10.8.0.0/24"));
    service.create_pools().await.expect("vpn pools");
    let laptop = service
        .add_device(DeviceRequest::parse("alice", "laptop", None).expect("request"))
        .await
        .expect("device");
    let config = laptop.config.render();
    assert!(config.contains(INSTANCES), "clients route the instance subnet:\n{config}");
    assert!(config.contains(&laptop.peer.ipv4.to_string()), "{config}");

    // The VPN's lease lives in the shared allocator, under the VPN's pool only.
    let vpn_pool = &service.settings().pool_v4;
    let lease = allocator.lookup(vpn_pool, laptop.peer.ipv4.into()).await.expect("lookup");
    assert!(lease.is_some(), "the peer's address is leased in {vpn_pool}");
    let instance_pool = "instances".parse().expect("label");
    assert_eq!(allocator.usage(&instance_pool).await.expect("usage").allocated, 0);

    // Revoking the device gives its address back.
    service.revoke(&laptop.peer.public_key).await.expect("revoke");
    let after = allocator.lookup(vpn_pool, laptop.peer.ipv4.into()).await.expect("lookup");
    assert_eq!(after, None, "a revoked device's address is released");
}

#[tokio::test]
async fn ide_routes_reach_only_instance_addresses() {
    let allocator = MemoryAllocator::new();
    let pool = "instances".parse().expect("label");
    allocator
        .create_pool(PoolSpec::new(pool, INSTANCES.parse().expect("prefix")))
        .await
        .expect("pool");
    let owner = OwnerId::parse("alice").expect("owner");
    let lease = allocator
        .allocate(
            &"instances".parse().expect("label"),
            &LeaseOwner::new(format!("{owner}/ide1")).expect("lease owner"),
        )
        .await
        .expect("address");

    let domain = Domain::parse("kwscloud.test").expect("domain");
    let policy = RoutePolicy::new(domain, [INSTANCES.parse().expect("net")]);
    let proxy = MemoryProxy::new(policy.clone());
    let host = policy.host("ide1.kwscloud.test").expect("host");
    proxy
        .publish(Route::ide(host.clone(), SocketAddr::new(lease.addr, 8080)))
        .await
        .expect("publish");
    let routes = proxy.routes().await.expect("routes");
    assert_eq!(routes.len(), 1);
    assert!(routes[0].websocket(), "IDE routes carry WebSocket upgrades");

    // An upstream outside the instance networks (the host itself) is refused, and nothing
    // changes.
    let other = policy.host("evil.kwscloud.test").expect("host");
    let refused = proxy.publish(Route::app(other, "127.0.0.1:22".parse().expect("addr"))).await;
    assert!(
        matches!(refused, Err(ProxyError::UpstreamNotAllowed { .. })),
        "upstream outside the instance subnets: {refused:?}"
    );
    assert_eq!(proxy.routes().await.expect("routes").len(), 1);
}
