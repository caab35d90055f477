//! Limits, hardening and owner networks, checked from inside the containers and from the host.

mod docker_env;

use std::net::IpAddr;

use docker_env::{IDE_PORT, TestEnv, config, http_status};
use kws_core::{InstanceId, OwnerId};
use kws_ipam::{IpAllocator, LeaseOwner};
use kws_runtime::{
    ExecRequest, InstanceInfo, InstanceKey, InstanceSpec, Resources, Runtime, UserId, VolumePolicy,
    docker::Capability,
};

const NO_OPTIONS: Option<bollard::query_parameters::InspectContainerOptions> = None;

fn sh(script: &str) -> ExecRequest {
    ExecRequest::new(["sh", "-c", script])
}

async fn launch(env: &TestEnv, spec: InstanceSpec) -> InstanceInfo {
    let key = InstanceKey::new(spec.owner.clone(), spec.name.clone());
    env.rt.create(spec).await.expect("create");
    env.rt.start(&key).await.expect("start");
    env.rt.inspect(&key).await.expect("inspect")
}

async fn run(env: &TestEnv, key: &InstanceKey, script: &str) -> (i64, String, String) {
    let out = env.rt.exec(key, sh(script)).await.expect("exec");
    (out.exit_code, out.stdout_text().trim().to_owned(), out.stderr_text())
}

/// `CapEff`, `CapBnd` and `NoNewPrivs` of a process in the container.
async fn caps(env: &TestEnv, key: &InstanceKey) -> (String, String, String) {
    let (_, status, _) = run(env, key, "cat /proc/self/status").await;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("{name} in {status}"))
    };
    (field("CapEff:"), field("CapBnd:"), field("NoNewPrivs:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_hardening_apply_inside_the_container() {
    let mut config = config();
    config.cap_add = vec![Capability::Chown];
    let Some(env) = TestEnv::with_config(config).await else { return };
    let owner = env.owner().clone();

    let mut spec = InstanceSpec::new(owner.clone(), InstanceId::parse("lim").expect("name"));
    spec.resources = Some(Resources { memory_bytes: 64 << 20, cpus: 0.5, pids: 24 });
    let lim = launch(&env, spec).await.key;
    let cgroup = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max \
                  /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us";
    let (_, limits, _) = run(&env, &lim, cgroup).await;
    let limits: Vec<&str> = limits.lines().collect();
    assert_eq!(limits, vec!["67108864", "24", "50000", "100000"], "memory, pids, cpu quota/period");
    let (_, uid, _) = run(&env, &lim, "id -u; id -g").await;
    assert_eq!(uid, "1000\n1000", "runs as the configured non-root user");
    let (eff, bnd, nnp) = caps(&env, &lim).await;
    assert_eq!(eff, "0000000000000000", "no effective capability");
    assert_eq!(
        bnd, "0000000000000001",
        "only CAP_CHOWN (the add-list) is left in the bounding set"
    );
    assert_eq!(nnp, "1", "no-new-privileges");
    let fork_bomb = "i=0; while [ $i -lt 40 ]; do sleep 2 & i=$((i+1)); done; wait";
    let (code, _, stderr) = run(&env, &lim, fork_bomb).await;
    assert!(
        stderr.contains("can't fork") || stderr.contains("Resource temporarily unavailable"),
        "a fork beyond the pids limit fails (exit {code}, stderr {stderr:?})"
    );

    // Root with a read-only root file system: still no capability beyond the add-list.
    let mut spec = InstanceSpec::new(owner.clone(), InstanceId::parse("ro").expect("name"));
    spec.user = Some(UserId { uid: 0, gid: 0 });
    spec.read_only_root = true;
    let ro = launch(&env, spec).await.key;
    let (eff, bnd, _) = caps(&env, &ro).await;
    assert_eq!((eff.as_str(), bnd.as_str()), ("0000000000000001", "0000000000000001"));
    let (code, _, _) = run(&env, &ro, "touch /etc/kws-probe").await;
    assert_ne!(code, 0, "the root file system is read-only");
    let (code, _, err) = run(&env, &ro, "touch /tmp/probe").await;
    assert_eq!(code, 0, "/tmp stays writable: {err}");
    let (code, _, _) = run(&env, &ro, "touch /workspace/probe").await;
    assert_ne!(code, 0, "root without CAP_DAC_OVERRIDE cannot write the user's workspace");

    let host = env.docker.inspect_container(&format!("kws.{owner}.lim"), NO_OPTIONS).await;
    let host = host.expect("inspect").host_config.expect("host config");
    assert_eq!(host.privileged, Some(false));
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
    assert_eq!(host.pids_limit, Some(24));
    assert_eq!(host.memory_swap, Some(64 << 20), "no swap beyond the memory limit");
    for k in [lim, ro] {
        env.rt.remove(&k, VolumePolicy::Delete).await.expect("remove");
    }
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
    // busybox's static wget crashes here; nc speaks the HTTP request just as well.
    let get = |addr| format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {addr} {IDE_PORT}");
    let (code, out, err) = run(&env, &a2.key, &get(a1.address)).await;
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "an owner's instances reach each other: {code} {out:?} {err}"
    );
    let (_, out, err) = run(&env, &a1.key, &get(b1.address)).await;
    assert!(
        out.is_empty() && err.contains("timed out"),
        "owner A's container cannot reach owner B's: {out:?} {err}"
    );
    let (_, out, err) = run(&env, &b1.key, &get(a1.address)).await;
    assert!(
        out.is_empty() && err.contains("timed out"),
        "owner B's container cannot reach owner A's: {out:?} {err}"
    );

    for info in [&a1, &a2, &b1] {
        env.rt.remove(&info.key, VolumePolicy::Delete).await.expect("remove");
    }
    for net in [&net_a, &net_b] {
        let usage = env.allocator.usage(&net.pool).await.expect("usage");
        assert_eq!(usage.allocated, 0, "remove gives the addresses back");
    }
    for owner in [&a, &b] {
        env.rt.remove_owner_network(owner).await.expect("remove network");
        assert_eq!(env.rt.owner_network(owner).await.expect("network"), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_report_memory_cpu_and_traffic() {
    let Some(env) = TestEnv::new().await else { return };
    let info = launch(
        &env,
        InstanceSpec::new(env.owner().clone(), InstanceId::parse("busy").expect("name")),
    )
    .await;
    assert_eq!(http_status(info.address, IDE_PORT).await, Ok(200));
    let spin = "timeout 4 sh -c 'while :; do :; done' >/dev/null 2>&1 &";
    let (code, _, _) = run(&env, &info.key, spin).await;
    assert_eq!(code, 0);
    let stats = env.rt.stats(&info.key).await.expect("stats");
    assert!(stats.memory_bytes > 0, "{stats:?}");
    assert_eq!(stats.memory_limit_bytes, 128 << 20, "the configured default limit");
    assert!(stats.rx_bytes > 0 && stats.tx_bytes > 0, "the HTTP request shows: {stats:?}");
    assert!(stats.pids >= 2, "init, httpd and the spinner: {stats:?}");
    assert!(
        stats.cpu_percent > 10.0 && stats.cpu_percent.is_finite(),
        "a spinning shell: {stats:?}"
    );
    env.rt.remove(&info.key, VolumePolicy::Delete).await.expect("remove");
}
