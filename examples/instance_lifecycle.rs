//! An instance's life on Docker: create, start, HTTP to its IDE port, stats, logs, a file in the
//! workspace, redeploy with a new environment, stop, remove.
//!
//! `cargo run --example instance_lifecycle --features docker` with `DOCKER_HOST` pointing at an
//! engine that has the test images (`scripts/images`). The IDE stand-in is `kws-test/busybox:1`
//! (httpd on 8080). Everything it makes carries `kws.test=1` and is removed at the end.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use kws::{
    core::{InstanceId, OwnerId},
    ipam::MemoryAllocator,
    runtime::{
        ExecRequest, ImageRef, InstanceKey, InstanceSpec, LogOptions, Redeploy, Runtime,
        VolumePolicy,
        docker::{DockerConfig, DockerRuntime, IdeConfig},
    },
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config =
        DockerConfig::new(IdeConfig { image: ImageRef::parse("kws-test/busybox:1")?, port: 8080 });
    config.extra_labels.insert("kws.test".into(), "1".into());
    config.stop_timeout = Duration::from_secs(3);
    let rt = DockerRuntime::connect(Arc::new(MemoryAllocator::new()), config).await?;
    let owner = OwnerId::parse(&format!("demo-{}", std::process::id()))?;
    let key = InstanceKey::new(owner.clone(), InstanceId::parse("ide")?);
    let outcome = walk(&rt, &owner, &key).await;
    // Clean up whatever happened above.
    if rt.inspect(&key).await.is_ok() {
        rt.remove(&key, VolumePolicy::Delete).await?;
    }
    rt.remove_network(&owner).await?;
    println!("removed the instance, its workspace and {owner}'s network");
    outcome
}

async fn walk(rt: &DockerRuntime, owner: &OwnerId, key: &InstanceKey) -> anyhow::Result<()> {
    let mut spec = InstanceSpec::new(owner.clone(), key.name.clone());
    spec.env.insert("GREETING".into(), "hello".into());
    spec.app_ports = vec![3000];
    let info = rt.create(spec).await?;
    println!("created {} at {} (state {:?})", info.key, info.address, info.state);
    rt.start(key).await?;
    let info = rt.inspect(key).await?;
    println!("started: {:?} since {:?}", info.state, info.started_at);
    let status = http_get(info.address, info.ide_port).await?;
    println!("GET http://{}:{}/ -> {status}", info.address, info.ide_port);

    let stats = rt.stats(key).await?;
    println!(
        "stats: cpu {:.1}%, memory {} KiB of {} MiB, rx {} B, tx {} B, {} processes",
        stats.cpu_percent,
        stats.memory_bytes / 1024,
        stats.memory_limit_bytes >> 20,
        stats.rx_bytes,
        stats.tx_bytes,
        stats.pids
    );
    let say = ExecRequest::new(["sh", "-c", "echo $GREETING > /workspace/note; echo wrote >&2"]);
    let out = rt.exec(key, say).await?;
    println!("exec: exit {} stderr {:?}", out.exit_code, out.stderr_text());
    let logs: Vec<_> =
        rt.logs(key, LogOptions { follow: false, tail: Some(5) }).await?.collect().await;
    println!("logs: {} lines", logs.len());

    let change = Redeploy {
        env: Some([("GREETING".to_owned(), "hello again".to_owned())].into()),
        ..Redeploy::default()
    };
    let redeployed = rt.redeploy(key, change).await?;
    println!(
        "redeployed: container {} -> {}, address {} -> {}",
        info.container_id.get(..12).unwrap_or(&info.container_id),
        redeployed.container_id.get(..12).unwrap_or(&redeployed.container_id),
        info.address,
        redeployed.address
    );
    let read = ExecRequest::new(["sh", "-c", "cat /workspace/note; echo $GREETING"]);
    let out = rt.exec(key, read).await?;
    println!("workspace after redeploy: {:?}", out.stdout_text());
    rt.stop(key, None).await?;
    println!("stopped: {:?}", rt.inspect(key).await?.state);
    Ok(())
}

/// The status code of `GET /` at `addr:port`, retried while the server starts.
async fn http_get(addr: std::net::Ipv4Addr, port: u16) -> anyhow::Result<String> {
    let mut last = None;
    for _ in 0..50 {
        match tokio::net::TcpStream::connect((addr, port)).await {
            Ok(mut stream) => {
                stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
                let mut response = String::new();
                stream.read_to_string(&mut response).await?;
                return Ok(response.lines().next().unwrap_or_default().to_owned());
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(anyhow::anyhow!("no answer from {addr}:{port}: {last:?}"))
}
