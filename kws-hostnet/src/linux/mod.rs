//! The Linux backend: links and addresses over rtnetlink, forwarding sysctls under
//! `/proc/sys/net`, and kws's nftables table replaced with one `nft -f` batch.
//!
//! All work runs on one dedicated thread created by [`LinuxHostNetwork::new`]. That thread
//! inherits the network namespace of the thread that called `new`, and every netlink socket,
//! sysctl file and `nft`/`iptables` child process is opened from it: the backend acts on the
//! namespace it was created in, whatever runtime later calls it.

mod command;
mod generation;
mod links;
mod netfilter;
mod sysctl;

use std::{fmt, thread};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use crate::{ApplyReport, Error, HostNetSpec, HostNetState, HostNetwork, TeardownErrors};

/// The Linux [`HostNetwork`]. See the module documentation for the namespace rule.
pub struct LinuxHostNetwork {
    jobs: mpsc::UnboundedSender<Job>,
}

impl fmt::Debug for LinuxHostNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinuxHostNetwork").finish_non_exhaustive()
    }
}

enum Job {
    Apply(Box<HostNetState>, oneshot::Sender<Result<ApplyReport, Error>>),
    Current(oneshot::Sender<Result<HostNetState, Error>>),
    Teardown(oneshot::Sender<Result<(), TeardownErrors>>),
}

impl LinuxHostNetwork {
    /// Starts the backend's thread in the caller's network namespace and opens its netlink
    /// connection there. The thread ends when the value is dropped.
    pub fn new() -> Result<Self, Error> {
        Self::start(netfilter::TableCache::default())
    }

    /// Like [`LinuxHostNetwork::new`], and remembers what it wrote to kws's table in
    /// `cache_file` (the batch and the kernel's listing of it), so that a restarted process
    /// applying the same state finds the table intact and changes nothing. Put the file on a
    /// tmpfs such as `/run`: it must not outlive the ruleset (a reboot).
    pub fn with_cache_file(cache_file: impl Into<std::path::PathBuf>) -> Result<Self, Error> {
        Self::start(netfilter::TableCache::with_file(cache_file.into()))
    }

    fn start(cache: netfilter::TableCache) -> Result<Self, Error> {
        let (jobs, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        thread::Builder::new()
            .name("kws-hostnet".into())
            .spawn(move || Worker::run(rx, ready_tx, cache))
            .map_err(|e| Error::Netlink {
                operation: "start worker".into(),
                message: e.to_string(),
            })?;
        ready_rx.recv().map_err(|_| Error::WorkerGone)??;
        Ok(Self { jobs })
    }

    async fn ask<T>(&self, job: impl FnOnce(oneshot::Sender<T>) -> Job) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send(job(tx)).ok()?;
        rx.await.ok()
    }
}

#[async_trait]
impl HostNetwork for LinuxHostNetwork {
    async fn apply(&self, desired: &HostNetState) -> Result<ApplyReport, Error> {
        let desired = Box::new(desired.clone());
        self.ask(|tx| Job::Apply(desired, tx)).await.ok_or(Error::WorkerGone)?
    }

    async fn current(&self) -> Result<HostNetState, Error> {
        self.ask(Job::Current).await.ok_or(Error::WorkerGone)?
    }

    async fn teardown(&self) -> Result<(), TeardownErrors> {
        self.ask(Job::Teardown).await.ok_or_else(|| TeardownErrors(vec![Error::WorkerGone]))?
    }
}

/// The state the worker thread owns.
struct Worker {
    netlink: rtnetlink::Handle,
    netfilter: netfilter::TableCache,
}

impl Worker {
    fn run(
        mut rx: mpsc::UnboundedReceiver<Job>,
        ready: std::sync::mpsc::Sender<Result<(), Error>>,
        netfilter: netfilter::TableCache,
    ) {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready.send(Err(Error::Netlink {
                    operation: "start runtime".into(),
                    message: e.to_string(),
                }));
                return;
            }
        };
        runtime.block_on(async move {
            let (connection, netlink, _) = match rtnetlink::new_connection() {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready.send(Err(Error::Netlink {
                        operation: "open socket".into(),
                        message: e.to_string(),
                    }));
                    return;
                }
            };
            let connection = tokio::spawn(connection);
            let _ = ready.send(Ok(()));
            let mut worker = Worker { netlink, netfilter };
            while let Some(job) = rx.recv().await {
                match job {
                    Job::Apply(state, tx) => {
                        let _ = tx.send(worker.apply(&state).await);
                    }
                    Job::Current(tx) => {
                        let _ = tx.send(worker.current().await);
                    }
                    Job::Teardown(tx) => {
                        let _ = tx.send(worker.teardown().await);
                    }
                }
            }
            connection.abort();
        });
    }

    async fn apply(&mut self, desired: &HostNetState) -> Result<ApplyReport, Error> {
        let (links_changed, addresses_changed) =
            links::converge(&self.netlink, &desired.bridges).await?;
        let sysctls_written = sysctl::converge(desired.forwarding)?;
        let netfilter_replaced = self.netfilter.converge(desired)?;
        let foreign_chain_rules_added = netfilter::docker_user_allow()?;
        self.netfilter.settle()?;
        Ok(ApplyReport {
            links_changed,
            addresses_changed,
            sysctls_written,
            netfilter_replaced,
            foreign_chain_rules_added,
        })
    }

    async fn current(&mut self) -> Result<HostNetState, Error> {
        let bridges = links::read(&self.netlink).await?;
        let forwarding = sysctl::read()?;
        let back = netfilter::read()?;
        HostNetState::new(HostNetSpec {
            bridges,
            forwarding,
            masquerade: back.masquerade,
            port_forwards: back.port_forwards,
            isolation: back.isolation,
            isolated_bridges: back.isolated_bridges,
        })
        .map_err(|e| Error::Readback { what: "host state", message: e.to_string() })
    }

    async fn teardown(&mut self) -> Result<(), TeardownErrors> {
        let mut errors = Vec::new();
        if let Err(e) = self.netfilter.remove() {
            errors.push(e);
        }
        errors.extend(netfilter::docker_user_remove());
        errors.extend(links::remove_owned(&self.netlink).await);
        if errors.is_empty() { Ok(()) } else { Err(TeardownErrors(errors)) }
    }
}
