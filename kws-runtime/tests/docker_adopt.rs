//! A new runtime over the same engine (a restarted process) knows every managed instance from
//! the engine's labels, and re-asserts their addresses in its (empty) allocator.

mod docker_env;

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr},
    sync::Arc,
};

use bollard::{
    models::{ContainerCreateBody, EndpointIpamConfig, EndpointSettings, NetworkingConfig},
    query_parameters::{
        CreateContainerOptions, InspectContainerOptions, RemoveContainerOptions,
        StartContainerOptions,
    },
};
use docker_env::{IDE_PORT, TestEnv, config, http_status};
use kws_core::InstanceId;
use kws_ipam::{IpAllocator, LeaseOwner, MemoryAllocator};
use kws_runtime::{
    InstanceKey, InstanceSpec, InstanceState, Runtime, VolumePolicy, docker::DockerRuntime,
};

/// One test: `adopt` looks at every owner's instances, so adoptions must not run side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adoption() {
    let Some(env) = TestEnv::new().await else { return };
    a_restarted_runtime_adopts_its_instances(&env).await;
    interrupted_redeploys_are_finished_or_undone(&env).await;
}

async fn a_restarted_runtime_adopts_its_instances(env: &TestEnv) {
    let owner = env.owner().clone();
    let spec =
        |name: &str| InstanceSpec::new(owner.clone(), InstanceId::parse(name).expect("name"));
    let kept = env.rt.create(spec("kept")).await.expect("create");
    env.rt.start(&kept.key).await.expect("start");
    let asleep = env.rt.create(spec("asleep")).await.expect("create");

    // The restarted process: a new runtime and an allocator that remembers nothing.
    let allocator = Arc::new(MemoryAllocator::new());
    let rt = DockerRuntime::with_client(env.docker.clone(), allocator.clone(), config())
        .await
        .expect("runtime");
    let adopted = rt.adopt().await.expect("adopt");
    let mut mine: Vec<_> = adopted.iter().filter(|i| i.key.owner == owner).collect();
    mine.sort_by(|a, b| a.key.cmp(&b.key));
    let keys: Vec<_> = mine.iter().map(|i| i.key.name.as_str()).collect();
    assert_eq!(keys, vec!["asleep", "kept"], "both instances, nothing else of the owner");
    assert_eq!(mine[1].state, InstanceState::Running);
    assert_eq!(mine[1].address, kept.address);
    assert_eq!(rt.list(&owner).await.expect("list").len(), 2);

    let net = rt.owner_network(&owner).await.expect("network").expect("exists");
    for info in [&kept, &asleep] {
        let lease = allocator.lookup(&net.pool, IpAddr::V4(info.address)).await.expect("lookup");
        let lease = lease.expect("the adopted instance's address is leased again");
        assert_eq!(lease.owner.as_str(), format!("instance/{}", info.key));
    }
    let fresh = rt.create(spec("fresh")).await.expect("create");
    assert!(
        fresh.address != kept.address && fresh.address != asleep.address,
        "a new instance does not get an adopted address ({})",
        fresh.address
    );
    rt.stop(&kept.key, None).await.expect("the new runtime manages the old instance");
    for info in [&kept, &asleep, &fresh] {
        rt.remove(&info.key, VolumePolicy::Delete).await.expect("remove");
    }
    assert_eq!(allocator.usage(&net.pool).await.expect("usage").allocated, 0);
}

/// A crash during redeploy leaves a `.next` container: beside its old container it is removed;
/// alone (the old one already gone) it becomes the instance at the instance's address.
async fn interrupted_redeploys_are_finished_or_undone(env: &TestEnv) {
    let owner = env.owner().clone();
    let key = InstanceKey::new(owner.clone(), InstanceId::parse("crashy").expect("name"));
    let info =
        env.rt.create(InstanceSpec::new(owner.clone(), key.name.clone())).await.expect("create");
    env.rt.start(&key).await.expect("start");
    let net = env.rt.owner_network(&owner).await.expect("network").expect("exists");
    let canonical = format!("kws.{owner}.crashy");
    let next = format!("{canonical}.next");
    let holder = LeaseOwner::new(format!("instance/{key}/next")).expect("holder");

    // Undone: the old container is still there.
    let temporary = leave_next(env, &canonical, &next, &net, &holder).await;
    env.rt.adopt().await.expect("adopt");
    assert!(inspect(env, &next).await.is_none(), "the stray new container is removed");
    assert_eq!(env.allocator.lookup(&net.pool, temporary.into()).await.expect("lookup"), None);
    assert_eq!(env.rt.inspect(&key).await.expect("inspect").container_id, info.container_id);

    // Finished: the old container was already removed.
    let temporary = leave_next(env, &canonical, &next, &net, &holder).await;
    let new_id = inspect(env, &next).await.expect("next").id;
    remove(env, &canonical).await;
    env.rt.adopt().await.expect("adopt");
    let now = env.rt.inspect(&key).await.expect("the instance is back");
    assert_eq!(Some(now.container_id.clone()), new_id, "the new container became the instance");
    assert_eq!(now.address, info.address, "at the instance's address");
    assert_eq!(http_status(now.address, IDE_PORT).await, Ok(200));
    assert_eq!(env.allocator.lookup(&net.pool, temporary.into()).await.expect("lookup"), None);
    env.rt.remove(&key, VolumePolicy::Delete).await.expect("remove");
}

/// What a redeploy that crashed after starting its new container leaves behind.
async fn leave_next(
    env: &TestEnv,
    canonical: &str,
    next: &str,
    net: &kws_runtime::docker::OwnerNetwork,
    holder: &LeaseOwner,
) -> Ipv4Addr {
    let old = inspect(env, canonical).await.expect("the old container");
    let config = old.config.expect("config");
    let lease = env.allocator.allocate(&net.pool, holder).await.expect("lease");
    let IpAddr::V4(temporary) = lease.addr else { panic!("IPv4 pool") };
    let endpoint = EndpointSettings {
        ipam_config: Some(EndpointIpamConfig {
            ipv4_address: Some(temporary.to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let body = ContainerCreateBody {
        image: config.image,
        labels: config.labels,
        user: config.user,
        host_config: old.host_config,
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(net.name.clone(), endpoint)])),
        }),
        ..Default::default()
    };
    let options = CreateContainerOptions { name: Some(next.to_owned()), ..Default::default() };
    env.docker.create_container(Some(options), body).await.expect("create next");
    env.docker.start_container(next, None::<StartContainerOptions>).await.expect("start next");
    temporary
}

async fn inspect(env: &TestEnv, name: &str) -> Option<bollard::models::ContainerInspectResponse> {
    env.docker.inspect_container(name, None::<InspectContainerOptions>).await.ok()
}

async fn remove(env: &TestEnv, name: &str) {
    let options = RemoveContainerOptions { force: true, ..Default::default() };
    env.docker.remove_container(name, Some(options)).await.expect("remove");
}
