//! What the Docker tests share: a runtime on the test engine with the test images and labels,
//! a fresh owner per test, and a guard that removes every engine object of its owners on drop
//! (also when the test fails).

#![allow(dead_code, unreachable_pub)]

use std::{collections::HashMap, net::Ipv4Addr, sync::Arc, time::Duration};

use bollard::{
    Docker,
    query_parameters::{ListContainersOptions, ListVolumesOptions, RemoveContainerOptions},
};
use kws_core::OwnerId;
use kws_ipam::MemoryAllocator;
use kws_runtime::{
    ImageRef, Resources,
    docker::{DockerConfig, DockerRuntime, IdeConfig},
    testkit::Fixture,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

pub const BUSYBOX: &str = "kws-test/busybox:1";
pub const PYTHON: &str = "kws-test/python3:1";
pub const IDE_PORT: u16 = 8080;

/// The configuration tests use: busybox httpd as the IDE, the test labels, short timeouts.
pub fn config() -> DockerConfig {
    let mut config = DockerConfig::new(IdeConfig {
        image: ImageRef::parse(BUSYBOX).expect("image"),
        port: IDE_PORT,
    });
    config.extra_labels = kws_testenv::test_labels().into_iter().collect();
    config.stop_timeout = Duration::from_secs(3);
    config.redeploy_settle = Duration::from_millis(700);
    config.default_resources = Resources { memory_bytes: 128 << 20, cpus: 1.0, pids: 128 };
    config
}

/// A test's runtime, allocator and owners; everything of its owners goes on drop.
pub struct TestEnv {
    pub docker: Docker,
    pub allocator: Arc<MemoryAllocator>,
    pub rt: Arc<DockerRuntime>,
    pub owners: Vec<OwnerId>,
}

impl TestEnv {
    /// A runtime with `config` and a fresh allocator, and one fresh owner; `None` (skipped
    /// loudly) without an engine.
    pub async fn with_config(config: DockerConfig) -> Option<Self> {
        let docker = kws_testenv::docker().await?;
        let docker = docker.negotiate_version().await.expect("negotiate the API version");
        let allocator = Arc::new(MemoryAllocator::new());
        let rt = DockerRuntime::with_client(docker.clone(), allocator.clone(), config)
            .await
            .expect("runtime");
        let mut env = Self { docker, allocator, rt: Arc::new(rt), owners: Vec::new() };
        env.new_owner();
        Some(env)
    }

    /// A runtime with the test configuration.
    pub async fn new() -> Option<Self> {
        Self::with_config(config()).await
    }

    /// Another fresh owner, cleaned up with the others.
    pub fn new_owner(&mut self) -> OwnerId {
        let owner =
            OwnerId::parse(&format!("t-{}", kws_testenv::random_suffix(10))).expect("owner id");
        self.owners.push(owner.clone());
        owner
    }

    pub fn owner(&self) -> &OwnerId {
        &self.owners[0]
    }

    pub fn fixture(&self) -> Fixture {
        Fixture { owner: self.owner().clone(), image: ImageRef::parse(BUSYBOX).expect("image") }
    }

    /// Leases held in every pool the runtime could have made (the allocator is this test's own).
    pub async fn leases(&self) -> u128 {
        use kws_ipam::IpAllocator;
        let config = self.rt.config();
        let mut total = 0;
        for subnet in config.owner_range.subnets(config.owner_prefix_len).expect("subnets") {
            let [a, b, c, d] = subnet.network().octets();
            let pool = format!("kws-{a}-{b}-{c}-{d}-{}", subnet.prefix_len());
            let pool = kws_core::DnsLabel::parse(&pool).expect("pool name");
            if let Ok(usage) = self.allocator.usage(&pool).await {
                total += usage.allocated;
            }
        }
        total
    }

    /// Containers and volumes carrying `kws.owner=<owner>`, by name.
    pub async fn objects_of(&self, owner: &OwnerId) -> (Vec<String>, Vec<String>) {
        objects_of(&self.docker, owner).await
    }
}

pub async fn objects_of(docker: &Docker, owner: &OwnerId) -> (Vec<String>, Vec<String>) {
    let filter = HashMap::from([("label".to_owned(), vec![format!("kws.owner={owner}")])]);
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filter.clone()),
            ..Default::default()
        }))
        .await
        .expect("list containers")
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .collect();
    let volumes = docker
        .list_volumes(Some(ListVolumesOptions { filters: Some(filter) }))
        .await
        .expect("list volumes")
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect();
    (containers, volumes)
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let owners = std::mem::take(&mut self.owners);
        // A thread of its own: drop may run inside the test's runtime, which cannot block.
        let cleaner = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            let Ok(rt) = rt else { return };
            rt.block_on(async move {
                let Ok(docker) = Docker::connect_with_defaults() else { return };
                let Ok(docker) = docker.negotiate_version().await else { return };
                for owner in owners {
                    let (containers, volumes) = objects_of(&docker, &owner).await;
                    for name in containers {
                        let options = RemoveContainerOptions { force: true, ..Default::default() };
                        let _ = docker
                            .remove_container(name.trim_start_matches('/'), Some(options))
                            .await;
                    }
                    for name in volumes {
                        let _ = docker
                            .remove_volume(
                                &name,
                                None::<bollard::query_parameters::RemoveVolumeOptions>,
                            )
                            .await;
                    }
                    let _ = docker.remove_network(&format!("kws.{owner}")).await;
                }
            });
        });
        let _ = cleaner.join();
    }
}

/// `GET /` at `addr:port` from this host; the status code. Retries while the server starts.
pub async fn http_status(addr: Ipv4Addr, port: u16) -> Result<u16, String> {
    let mut last = String::new();
    for _ in 0..50 {
        match get(addr, port).await {
            Ok(code) => return Ok(code),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last)
}

async fn get(addr: Ipv4Addr, port: u16) -> Result<u16, String> {
    let connect = TcpStream::connect((addr, port));
    let mut stream = tokio::time::timeout(Duration::from_secs(2), connect)
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: ide\r\n\r\n").await.map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    let code = text.split_whitespace().nth(1).ok_or_else(|| format!("no status line: {text:?}"))?;
    code.parse().map_err(|_| format!("bad status line: {text:?}"))
}
