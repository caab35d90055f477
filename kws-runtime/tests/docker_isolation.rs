//! Limits and hardening checked from inside the containers, and stats.

mod docker_env;

use docker_env::{IDE_PORT, TestEnv, config, http_status};
use kws_core::InstanceId;
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
    let host = host.expect("inspect");
    let labels = host.config.and_then(|c| c.labels).expect("labels");
    for (label, value) in [
        ("kws.managed", "true"),
        ("kws.owner", owner.as_str()),
        ("kws.instance", "lim"),
        ("kws.test", "1"),
    ] {
        assert_eq!(labels.get(label).map(String::as_str), Some(value), "label {label}");
    }
    let host = host.host_config.expect("host config");
    assert_eq!(host.privileged, Some(false));
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
    assert_eq!(host.pids_limit, Some(24));
    assert_eq!(host.memory_swap, Some(64 << 20), "no swap beyond the memory limit");
    for k in [lim, ro] {
        env.rt.remove(&k, VolumePolicy::Delete).await.expect("remove");
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
