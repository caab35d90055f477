//! Waiting for a reload to take effect: nginx answers `-s reload` at once, while the master
//! starts new workers and the old ones stop accepting a moment later.

use std::{
    path::Path,
    time::{Duration, Instant},
};

/// A worker of the master: its pid and whether it is shutting down (its process title says
/// so once it has closed its listening sockets' side of the reload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Worker {
    pid: u32,
    shutting_down: bool,
}

impl Worker {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }
}

/// The master's pid, read from its pid file.
pub(crate) fn master(pid_file: &Path) -> Option<u32> {
    std::fs::read_to_string(pid_file).ok()?.trim().parse().ok()
}

/// The worker processes of `master` (children whose title names a worker).
pub(crate) fn workers(master: u32) -> Vec<Worker> {
    children(master)
        .into_iter()
        .filter_map(|pid| {
            let title = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let title = String::from_utf8_lossy(&title);
            title
                .contains("worker process")
                .then(|| Worker { pid, shutting_down: title.contains("shutting down") })
        })
        .collect()
}

/// The children of `pid`: from `/proc/<pid>/task/<pid>/children` where the kernel has it,
/// otherwise by scanning every process's parent.
fn children(pid: u32) -> Vec<u32> {
    if let Ok(list) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        return list.split_whitespace().filter_map(|p| p.parse().ok()).collect();
    }
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|entry| {
            let child: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            // The command name is in parentheses and may hold spaces; the ppid follows it.
            let ppid: u32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

/// Waits until `master` runs a worker that is not in `before` and every worker of `before`
/// is gone or shutting down; `Err` after `timeout`.
pub(crate) fn wait_reloaded(
    master: u32,
    before: &[Worker],
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = workers(master);
        let fresh = now.iter().any(|w| !w.shutting_down && !before.iter().any(|b| b.pid == w.pid));
        let old_serving =
            now.iter().any(|w| !w.shutting_down && before.iter().any(|b| b.pid == w.pid));
        if fresh && !old_serving {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "nginx (pid {master}) did not switch to new workers within {timeout:?}; see its error log"
            ));
        }
        std::thread::sleep(Duration::from_millis(3));
    }
}
