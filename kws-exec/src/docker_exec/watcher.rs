//! Docker's event stream for an engine's containers: which execs ended and which containers
//! hit their memory limit. It wakes waiting jobs instead of polling.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use bollard::{Docker, query_parameters::EventsOptions};
use futures::StreamExt;
use tokio::{sync::watch, task::AbortHandle};

/// What the engine learned from Docker's events.
#[derive(Debug, Default)]
struct Seen {
    /// Exec ids being waited for, and their exit code once `exec_die` came.
    execs: HashMap<String, Option<i64>>,
    /// Out-of-memory kills per container id.
    ooms: HashMap<String, u64>,
}

/// Follows `exec_die` and `oom` events of the engine's containers.
#[derive(Debug, Clone)]
pub(crate) struct EventWatch {
    seen: Arc<Mutex<Seen>>,
    changed: watch::Sender<u64>,
}

impl EventWatch {
    /// Starts following the events of containers labelled `label` (`key=value`).
    /// Abort the returned handle to stop following.
    pub(crate) fn start(docker: Docker, label: String) -> (Self, AbortHandle) {
        let (changed, _) = watch::channel(0);
        let watch = Self { seen: Arc::default(), changed };
        let follower = watch.clone();
        let task = tokio::spawn(async move { follower.follow(docker, label).await });
        (watch, task.abort_handle())
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn follow(self, docker: Docker, label: String) {
        let filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("event".to_owned(), vec!["exec_die".to_owned(), "oom".to_owned()]),
            ("label".to_owned(), vec![label]),
        ]);
        loop {
            let options = EventsOptions { filters: Some(filters.clone()), ..Default::default() };
            let mut events = docker.events(Some(options));
            while let Some(event) = events.next().await {
                let Ok(event) = event else { break };
                let actor = event.actor.unwrap_or_default();
                let container = actor.id.unwrap_or_default();
                let attributes = actor.attributes.unwrap_or_default();
                let mut seen = self.seen();
                match event.action.as_deref() {
                    Some("oom") => *seen.ooms.entry(container).or_default() += 1,
                    Some(action) if action.starts_with("exec_die") => {
                        let exec = attributes.get("execID").cloned().unwrap_or_default();
                        let code = attributes.get("exitCode").and_then(|c| c.parse().ok());
                        if let Some(slot) = seen.execs.get_mut(&exec) {
                            *slot = Some(code.unwrap_or(-1));
                        }
                    }
                    _ => continue,
                }
                drop(seen);
                self.changed.send_modify(|n| *n += 1);
            }
            // The stream broke (the engine restarted?): follow again shortly.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Starts waiting for `exec`'s end; call before starting it so the event cannot be missed.
    pub(crate) fn expect_exec(&self, exec: &str) {
        self.seen().execs.insert(exec.to_owned(), None);
    }

    /// Stops waiting for `exec`.
    pub(crate) fn forget_exec(&self, exec: &str) {
        self.seen().execs.remove(exec);
    }

    /// Waits until Docker reports `exec`'s end, and returns its exit code.
    pub(crate) async fn exec_died(&self, exec: &str) -> i64 {
        let mut changed = self.changed.subscribe();
        loop {
            if let Some(Some(code)) = self.seen().execs.get(exec) {
                return *code;
            }
            if changed.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Out-of-memory kills seen so far in `container`.
    pub(crate) fn ooms(&self, container: &str) -> u64 {
        self.seen().ooms.get(container).copied().unwrap_or(0)
    }

    /// Waits up to `limit` for `container`'s OOM count to pass `before`.
    pub(crate) async fn oom_after(&self, container: &str, before: u64, limit: Duration) -> bool {
        let mut changed = self.changed.subscribe();
        let wait = async {
            while self.ooms(container) <= before {
                if changed.changed().await.is_err() {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(limit, wait).await.unwrap_or(false)
    }

    /// Forgets a retired container's counts.
    pub(crate) fn forget_container(&self, container: &str) {
        self.seen().ooms.remove(container);
    }
}
