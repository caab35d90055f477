//! The browser IDE image `kws/ide:1` (code-server, built by scripts/images from
//! scripts/ide-image) run the way the platform runs it: by the Docker backend of kws-runtime,
//! hardened (all capabilities dropped, no-new-privileges, limits), with the workspace volume.
//!
//! Checked from the host, on the instance's bridge address only: `/healthz` answers, the IDE
//! listens on the port the runtime gave it (`KWS_IDE_PORT`, which the spec cannot move), every
//! process runs as uid 1000, the default settings are seeded into the volume (once), the
//! workbench's WebSocket refuses a foreign Origin (403) and upgrades a matching one (101), and
//! the workspace survives the container (a second one on the same volume finds the files).

use std::{collections::HashMap, net::Ipv4Addr, time::Duration};

use bollard::{
    Docker,
    query_parameters::{
        ListContainersOptions, ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions,
        RemoveVolumeOptions,
    },
};
use kws::{
    core::{InstanceId, OwnerId},
    ipam::MemoryAllocator,
    runtime::{
        ExecRequest, ImageRef, InstanceInfo, InstanceKey, InstanceSpec, Runtime, VolumePolicy,
        docker::{DockerConfig, DockerRuntime, IdeConfig},
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::{Instant, timeout},
};

const IDE: &str = "kws/ide:1";
/// Not the image's default (8080): the IDE must listen where the runtime says.
const IDE_PORT: u16 = 8099;
const SETTINGS: &str = "/workspace/.kws/ide/data/User/settings.json";

/// Removes every container, volume and network of the test's owner, also when the test fails.
struct Cleanup {
    owner: OwnerId,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let owner = self.owner.clone();
        // A thread of its own: drop may run inside the test's runtime, which cannot block.
        let cleaner = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                let Ok(docker) = Docker::connect_with_defaults() else { return };
                let Ok(docker) = docker.negotiate_version().await else { return };
                remove_all_of(&docker, &owner).await;
            });
        });
        let _ = cleaner.join();
    }
}

async fn remove_all_of(docker: &Docker, owner: &OwnerId) {
    let filters = HashMap::from([("label".to_owned(), vec![format!("kws.owner={owner}")])]);
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        }))
        .await
        .unwrap_or_default();
    for id in containers.into_iter().filter_map(|c| c.id) {
        let options = RemoveContainerOptions { force: true, ..Default::default() };
        let _ = docker.remove_container(&id, Some(options)).await;
    }
    let volumes = docker
        .list_volumes(Some(ListVolumesOptions { filters: Some(filters.clone()) }))
        .await
        .map(|v| v.volumes.unwrap_or_default())
        .unwrap_or_default();
    for volume in volumes {
        let _ = docker.remove_volume(&volume.name, None::<RemoveVolumeOptions>).await;
    }
    let networks = docker
        .list_networks(Some(ListNetworksOptions { filters: Some(filters) }))
        .await
        .unwrap_or_default();
    for id in networks.into_iter().filter_map(|n| n.id) {
        let _ = docker.remove_network(&id).await;
    }
}

/// The runtime on the test engine with kws/ide:1 as the IDE; `None` (skipped loudly, a failure
/// under KWS_TEST_REQUIRE=1) without an engine or without the image.
async fn runtime() -> Option<DockerRuntime> {
    let docker = kws_testenv::docker().await?;
    if let Err(e) = docker.inspect_image(IDE).await {
        return kws_testenv::unavailable(
            "the IDE image kws/ide:1",
            format!("{e}; scripts/images builds it"),
        );
    }
    let mut config =
        DockerConfig::new(IdeConfig { image: ImageRef::parse(IDE).expect("image"), port: 8080 });
    config.extra_labels = kws_testenv::test_labels().into_iter().collect();
    config.stop_timeout = Duration::from_secs(5);
    let allocator = std::sync::Arc::new(MemoryAllocator::new());
    Some(DockerRuntime::with_client(docker, allocator, config).await.expect("runtime"))
}

async fn launch(rt: &DockerRuntime, spec: InstanceSpec) -> InstanceInfo {
    let key = InstanceKey::new(spec.owner.clone(), spec.name.clone());
    rt.create(spec).await.expect("create");
    rt.start(&key).await.expect("start");
    rt.inspect(&key).await.expect("inspect")
}

async fn sh(rt: &DockerRuntime, info: &InstanceInfo, script: &str) -> String {
    let out = rt.exec(&info.key, ExecRequest::new(["sh", "-c", script])).await.expect("exec");
    assert_eq!(out.exit_code, 0, "`{script}` failed: {out:?}");
    out.stdout_text()
}

/// Sends `request` to `addr:port` and returns the response head (up to the blank line), or an
/// error; the connection is dropped after the head (a 101 leaves it open otherwise).
async fn head(addr: Ipv4Addr, port: u16, request: String) -> Result<String, String> {
    let exchange = async {
        let mut stream = TcpStream::connect((addr, port)).await.map_err(|e| e.to_string())?;
        stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        Ok(String::from_utf8_lossy(&got).into_owned())
    };
    timeout(Duration::from_secs(5), exchange).await.map_err(|_| "timed out".to_owned())?
}

fn status_of(head: &str) -> Option<u16> {
    head.lines().next()?.split(' ').nth(1)?.parse().ok()
}

/// Polls `GET /healthz` until it is 200; panics with the container's logs after `deadline`.
async fn wait_healthy(rt: &DockerRuntime, info: &InstanceInfo, deadline: Duration) -> Duration {
    let started = Instant::now();
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: {}:{IDE_PORT}\r\nConnection: close\r\n\r\n",
        info.address
    );
    loop {
        let last = head(info.address, IDE_PORT, request.clone()).await;
        if last.as_deref().ok().and_then(status_of) == Some(200) {
            return started.elapsed();
        }
        if started.elapsed() > deadline {
            let logs = rt
                .exec(&info.key, ExecRequest::new(["sh", "-c", "ps -eo pid,uid,args"]))
                .await
                .map(|o| o.stdout_text())
                .unwrap_or_default();
            panic!("no 200 from /healthz within {deadline:?} (last: {last:?}); processes:\n{logs}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn upgrade(info: &InstanceInfo, path: &str, origin: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {}:{IDE_PORT}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        info.address
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_server_runs_hardened_on_the_runtime_port_and_keeps_the_workspace() {
    let Some(rt) = runtime().await else { return };
    let owner = OwnerId::parse(&format!("ide-{}", kws_testenv::random_suffix(8))).expect("owner");
    let _cleanup = Cleanup { owner: owner.clone() };
    let mut spec = InstanceSpec::new(owner.clone(), InstanceId::parse("ide").expect("name"));
    spec.ide_port = Some(IDE_PORT);
    // The runtime owns this variable: a spec's own value must not move the IDE.
    spec.env.insert("KWS_IDE_PORT".into(), "1".into());
    let info = launch(&rt, spec.clone()).await;
    assert_eq!(info.ide_port, IDE_PORT);

    let took = wait_healthy(&rt, &info, Duration::from_secs(60)).await;
    eprintln!("kws/ide:1: /healthz 200 after {took:?} (from start)");

    // Every process of the container, code-server's included, runs as 1000.
    let uids = sh(
        &rt,
        &info,
        "for s in /proc/[0-9]*/status; do sed -n 's/^Uid:\\t//p' \"$s\" 2>/dev/null; done; true",
    )
    .await;
    let mut seen = 0;
    for line in uids.lines() {
        seen += 1;
        assert!(line.split_whitespace().all(|id| id == "1000"), "a process not uid 1000: {line}");
    }
    assert!(seen >= 3, "docker-init, tini, code-server at least; got {seen}");
    let args = sh(&rt, &info, "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; true").await;
    assert!(
        args.contains(&format!("--bind-addr 0.0.0.0:{IDE_PORT}")),
        "code-server on the runtime's port: {args}"
    );

    // The default settings, seeded into the volume.
    let settings = sh(&rt, &info, &format!("cat {SETTINGS}")).await;
    let parsed: serde_json::Value = serde_json::from_str(&settings).expect("settings.json is JSON");
    assert_eq!(parsed["chat.disableAIFeatures"], serde_json::Value::Bool(true), "{settings}");
    assert_eq!(parsed["telemetry.telemetryLevel"], "off", "{settings}");

    // The workbench's WebSocket: the path VS Code opens, a foreign Origin refused, the
    // instance's own (the Host the browser sent) upgraded.
    let product = "/opt/code-server/lib/vscode/product.json";
    let commit = sh(
        &rt,
        &info,
        &format!("sed -n 's/^ *\"commit\": *\"\\([0-9a-f]*\\)\".*/\\1/p' {product}"),
    )
    .await;
    let commit = commit.trim();
    assert_eq!(commit.len(), 40, "the commit of the VS Code build: {commit:?}");
    let token = kws_testenv::random_suffix(8);
    let path = format!(
        "/stable-{commit}?reconnectionToken=kws-test-{token}&reconnection=false\
         &skipWebSocketFrames=false"
    );
    let foreign = head(info.address, IDE_PORT, upgrade(&info, &path, "http://evil.example")).await;
    assert_eq!(foreign.as_deref().ok().and_then(status_of), Some(403), "{foreign:?}");
    let own = format!("http://{}:{IDE_PORT}", info.address);
    let matching = head(info.address, IDE_PORT, upgrade(&info, &path, &own)).await;
    assert_eq!(matching.as_deref().ok().and_then(status_of), Some(101), "{matching:?}");

    let stats = rt.stats(&info.key).await.expect("stats");
    eprintln!(
        "kws/ide:1 just after start: {} MiB in use of {} MiB, {} pids",
        stats.memory_bytes >> 20,
        stats.memory_limit_bytes >> 20,
        stats.pids
    );

    // The workspace outlives the container: a file, and settings the user changed (not seeded
    // again over them).
    sh(&rt, &info, "echo kws-ide-kept > /workspace/kept.txt").await;
    sh(&rt, &info, &format!("echo '{{\"editor.fontSize\": 17}}' > {SETTINGS}")).await;
    rt.remove(&info.key, VolumePolicy::Keep).await.expect("remove, keeping the volume");
    let second = launch(&rt, spec).await;
    assert_ne!(second.container_id, info.container_id, "a new container");
    assert_eq!(second.volume, info.volume, "on the same volume");
    wait_healthy(&rt, &second, Duration::from_secs(60)).await;
    assert_eq!(sh(&rt, &second, "cat /workspace/kept.txt").await.trim(), "kws-ide-kept");
    let settings = sh(&rt, &second, &format!("cat {SETTINGS}")).await;
    assert!(settings.contains("editor.fontSize"), "the user's settings kept: {settings}");

    rt.remove(&second.key, VolumePolicy::Delete).await.expect("remove");
    rt.remove_network(&owner).await.expect("remove network");
}
