//! Owner networks: subnets from the configured range, addresses from the allocator, HTTP from
//! the host to the IDE port, and no traffic between owners. Alone in its test binary: no other
//! test creates networks while it probes.

mod docker_env;

use std::net::IpAddr;

use docker_env::{IDE_PORT, TestEnv, http_status};
use kws_core::{InstanceId, OwnerId};
use kws_ipam::{IpAllocator, LeaseOwner};
use kws_runtime::{ExecRequest, InstanceInfo, InstanceSpec, Runtime, VolumePolicy};

const NO_OPTIONS: Option<bollard::query_parameters::InspectContainerOptions> = None;

async fn launch(env: &TestEnv, spec: InstanceSpec) -> InstanceInfo {
    let key = kws_runtime::InstanceKey::new(spec.owner.clone(), spec.name.clone());
    env.rt.create(spec).await.expect("create");
    env.rt.start(&key).await.expect("start");
    env.rt.inspect(&key).await.expect("inspect")
}

/// `GET /` from inside `from` to `to`'s IDE port: the response, or the error.
async fn get(env: &TestEnv, from: &InstanceInfo, to: &InstanceInfo) -> Result<String, String> {
    // busybox's static wget crashes here; nc speaks the HTTP request just as well.
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {} {IDE_PORT}", to.address);
    let out = env.rt.exec(&from.key, ExecRequest::new(["sh", "-c", &script])).await;
    let out = out.expect("exec");
    if out.stdout.is_empty() { Err(out.stderr_text()) } else { Ok(out.stdout_text()) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_get_allocated_addresses_on_isolated_networks() {
    let Some(mut env) = TestEnv::new().await else { return };
    let a = env.owner().clone();
    let b = env.new_owner();
    let spec = |owner: &OwnerId, name: &str| {
        InstanceSpec::new(owner.clone(), InstanceId::parse(name).expect("name"))
    };
    let a1 = launch(&env, spec(&a, "a1")).await;
    let a2 = launch(&env, spec(&a, "a2")).await;
    let b1 = launch(&env, spec(&b, "b1")).await;

    let net_a = env.rt.owner_network(&a).await.expect("network").expect("A's network");
    let net_b = env.rt.owner_network(&b).await.expect("network").expect("B's network");
    let range = env.rt.config().owner_range;
    assert_ne!(net_a.subnet, net_b.subnet, "one subnet per owner");
    for net in [&net_a, &net_b] {
        // Read-only look at the host: the bridge carries the name the host firewall matches.
        let shown = std::process::Command::new("ip")
            .args(["-o", "-4", "addr", "show", "dev", net.bridge.as_str()])
            .output()
            .expect("ip");
        let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
        let gateway =
            format!("{}/{}", net.subnet.hosts().next().expect("host"), net.subnet.prefix_len());
        assert!(shown.contains(&gateway), "bridge {} has {gateway}: {shown:?}", net.bridge);
    }
    for (net, info) in [(&net_a, &a1), (&net_a, &a2), (&net_b, &b1)] {
        assert!(range.contains(&net.subnet), "{} inside the configured {range}", net.subnet);
        assert_eq!(net.subnet.prefix_len(), env.rt.config().owner_prefix_len);
        let holder = LeaseOwner::new(format!("instance/{}", info.key)).expect("holder");
        let lease = env.allocator.lookup_owner(&net.pool, &holder).await.expect("lookup");
        let lease = lease.expect("the instance holds a lease");
        assert_eq!(lease.addr, IpAddr::V4(info.address), "the address is the allocator's lease");
        let name = format!("kws.{}.{}", info.key.owner, info.key.name);
        let found = env.docker.inspect_container(&name, NO_OPTIONS).await;
        let networks = found.expect("inspect").network_settings.and_then(|n| n.networks);
        let ip = networks.and_then(|n| n.get(&net.name).and_then(|e| e.ip_address.clone()));
        assert_eq!(ip, Some(info.address.to_string()), "the engine gave it that address");
    }

    for info in [&a1, &b1] {
        let code = http_status(info.address, IDE_PORT).await;
        assert_eq!(code, Ok(200), "GET from the host to {}:{IDE_PORT}", info.address);
    }
    let same_owner = get(&env, &a2, &a1).await;
    assert!(
        same_owner.as_ref().is_ok_and(|r| r.starts_with("HTTP/1.1 200")),
        "an owner's instances reach each other: {same_owner:?}"
    );
    for round in 0..2 {
        let a_to_b = get(&env, &a1, &b1).await;
        assert!(
            a_to_b.as_ref().is_err_and(|e| e.contains("timed out")),
            "owner A's container cannot reach owner B's (round {round}): {a_to_b:?}"
        );
        let b_to_a = get(&env, &b1, &a1).await;
        assert!(
            b_to_a.as_ref().is_err_and(|e| e.contains("timed out")),
            "owner B's container cannot reach owner A's (round {round}): {b_to_a:?}"
        );
    }

    for info in [&a1, &a2, &b1] {
        env.rt.remove(&info.key, VolumePolicy::Delete).await.expect("remove");
    }
    for net in [&net_a, &net_b] {
        let usage = env.allocator.usage(&net.pool).await.expect("usage");
        assert_eq!(usage.allocated, 0, "remove gives the addresses back");
    }
    for owner in [&a, &b] {
        env.rt.remove_network(owner).await.expect("remove network");
        assert_eq!(env.rt.owner_network(owner).await.expect("network"), None);
    }
}
