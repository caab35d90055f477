//! A new runtime over the same engine (a restarted process) knows every managed instance from
//! the engine's labels, and re-asserts their addresses in its (empty) allocator.

mod docker_env;

use std::{net::IpAddr, sync::Arc};

use docker_env::{TestEnv, config};
use kws_core::InstanceId;
use kws_ipam::{IpAllocator, MemoryAllocator};
use kws_runtime::{InstanceSpec, InstanceState, Runtime, VolumePolicy, docker::DockerRuntime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_runtime_adopts_its_instances() {
    let Some(env) = TestEnv::new().await else { return };
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
