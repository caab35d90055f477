//! A Docker engine of the test's own, running inside a network namespace the test created: its
//! bridges, veths and netfilter rules (Docker's and kws's) live in that namespace, so a test can
//! rewrite them, or race them, without touching the machine's own network.

use std::{
    fs::{self, File},
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use bollard::{
    Docker,
    query_parameters::{ImportImageOptions, ListContainersOptions, RemoveContainerOptions},
};
use futures::{StreamExt, TryStreamExt};

use crate::{Netns, unavailable};

/// Where the engines' data roots live; one folder per namespace, deleted on drop.
pub(crate) const DATA_ROOT: &str = "/var/lib/kws-test-docker-ns";
/// Where their exec roots and sockets live.
pub(crate) const EXEC_ROOT: &str = "/run/kws-test/ns";

/// `dockerd` started in a fresh [`Netns`] (network namespace only: it shares the machine's
/// mounts and cgroups, and starts its own containerd in a containerd namespace of its own).
///
/// # Contract
/// - Containers it runs, their bridges and every iptables/nftables rule it or the test writes
///   are inside the namespace; the machine's network is untouched and nothing inside has a route
///   out of it.
/// - On drop (also when the test panics) it removes its containers, stops the engine, unmounts
///   and deletes its folders, then deletes the namespace.
#[derive(Debug)]
pub struct NetnsDocker {
    child: Option<Child>,
    docker: Docker,
    data_root: PathBuf,
    exec_root: PathBuf,
    socket: PathBuf,
    // Last: the namespace outlives the engine inside it.
    netns: Netns,
}

impl NetnsDocker {
    /// Starts the engine and waits until it answers; `None` (after a loud skip message) when
    /// namespaces or `dockerd` are not available here; panics instead under
    /// `KWS_TEST_REQUIRE=1`.
    pub async fn start() -> Option<Self> {
        let netns = Netns::new()?;
        let name = netns.name().to_owned();
        let data_root = Path::new(DATA_ROOT).join(&name);
        let exec_root = Path::new(EXEC_ROOT).join(&name);
        let socket = Path::new(EXEC_ROOT).join(format!("{name}.sock"));
        for dir in [&data_root, &exec_root] {
            if let Err(e) = fs::create_dir_all(dir) {
                return unavailable("Docker in a namespace", format!("{}: {e}", dir.display()));
            }
        }
        let log = exec_root.join("dockerd.log");
        let child = match spawn_dockerd(&netns, &data_root, &exec_root, &socket, &log) {
            Ok(child) => child,
            Err(e) => return unavailable("Docker in a namespace", format!("dockerd: {e}")),
        };
        let mut starting = Starting {
            child: Some(child),
            netns: Some(netns),
            log: log.clone(),
            roots: vec![data_root.clone(), exec_root.clone(), socket.clone()],
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let docker = loop {
            // The client refuses a socket path that does not exist yet.
            if socket.exists() {
                let address = format!("unix://{}", socket.display());
                let client = Docker::connect_with_unix(&address, 120, bollard::API_DEFAULT_VERSION);
                if let Ok(client) = client {
                    if client.ping().await.is_ok() {
                        break client;
                    }
                }
            }
            let exited = starting.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                return unavailable("Docker in a namespace", starting.failure());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (child, netns) = (starting.child.take(), starting.netns.take());
        starting.roots.clear();
        let netns = netns.expect("the namespace is kept until the engine answers");
        let mut engine = Self { child, docker, data_root, exec_root, socket, netns };
        match engine.docker.clone().negotiate_version().await {
            Ok(docker) => engine.docker = docker,
            Err(e) => return unavailable("Docker in a namespace", format!("version: {e}")),
        }
        Some(engine)
    }

    /// A client of this engine.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// The engine's socket (for a client in another process: `unix://<socket>`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The namespace the engine and its containers' network live in.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// Copies `image` from the engine `from` into this one (`docker save | docker load`).
    ///
    /// # Panics
    /// When the image cannot be read from `from` or loaded here.
    pub async fn copy_image(&self, from: &Docker, image: &str) {
        let tarball: Vec<bytes::Bytes> =
            from.export_image(image).try_collect().await.expect("export the image");
        let body = futures::stream::iter(tarball);
        let options = ImportImageOptions { quiet: true, ..Default::default() };
        let mut progress = self.docker.import_image_stream(options, body, None);
        while let Some(step) = progress.next().await {
            step.expect("load the image");
        }
    }

    fn shut_down(&mut self) {
        let docker = self.docker.clone();
        // A thread of its own: drop may run inside the test's runtime, which cannot block.
        let cleaner = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                let all = ListContainersOptions { all: true, ..Default::default() };
                for c in docker.list_containers(Some(all)).await.unwrap_or_default() {
                    let Some(id) = c.id else { continue };
                    let force = RemoveContainerOptions { force: true, ..Default::default() };
                    let _ = docker.remove_container(&id, Some(force)).await;
                }
            });
        });
        let _ = cleaner.join();
        if let Some(mut child) = self.child.take() {
            // SIGTERM lets the engine unmount what it mounted; SIGKILL if it hangs.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for root in [&self.data_root, &self.exec_root] {
            unmount_under(root);
            let _ = fs::remove_dir_all(root);
        }
        let _ = fs::remove_file(&self.socket);
    }
}

/// An engine that has not answered yet: killed (and its namespace deleted) if it never does.
struct Starting {
    child: Option<Child>,
    netns: Option<Netns>,
    log: PathBuf,
    /// Folders and socket to delete if it never answers.
    roots: Vec<PathBuf>,
}

impl Starting {
    fn failure(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        format!("dockerd did not answer; last lines of {}: {tail:?}", self.log.display())
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for root in &self.roots {
            unmount_under(root);
            let _ = fs::remove_dir_all(root).or_else(|_| fs::remove_file(root));
        }
    }
}

impl Drop for NetnsDocker {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn spawn_dockerd(
    netns: &Netns,
    data_root: &Path,
    exec_root: &Path,
    socket: &Path,
    log: &Path,
) -> std::io::Result<Child> {
    let ns_file = File::open(format!("/var/run/netns/{}", netns.name()))?;
    let log = File::create(log)?;
    let containerd_ns = format!("kws-{}", netns.name());
    let mut cmd = Command::new("dockerd");
    cmd.arg("--data-root")
        .arg(data_root)
        .arg("--exec-root")
        .arg(exec_root)
        .arg("--pidfile")
        .arg(exec_root.join("dockerd.pid"))
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(["--containerd-namespace", &containerd_ns])
        .args(["--containerd-plugins-namespace", &format!("{containerd_ns}-plugins")])
        .args(["--bridge", "none", "--log-level", "warn"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let fd = ns_file.as_raw_fd();
    // SAFETY: between fork and exec the closure only calls setns(2), which is async-signal-safe,
    // on a descriptor that stays open in the parent (ns_file lives until spawn returns).
    unsafe {
        cmd.pre_exec(move || {
            if crate::netns::setns_net(fd) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let child = cmd.spawn();
    drop(ns_file);
    child
}

/// Lazily unmounts every mount point at or below `root` (deepest first).
fn unmount_under(root: &Path) {
    let Ok(mounts) = fs::read_to_string("/proc/self/mountinfo") else { return };
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(root))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = Command::new("umount").args(["-l", point]).status();
    }
}
