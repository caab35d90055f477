//! What a language's pool of warm sandboxes is doing: plain data, so a caller built without
//! the Docker backend (a front end showing an engine's state) can name it.

/// A pool's state, as `ExecEngine::pools` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Warm containers the pool keeps.
    pub target: usize,
    /// Containers waiting for a job.
    pub ready: usize,
    /// Containers running a job or being proven clean.
    pub busy: usize,
    /// Containers being made.
    pub starting: usize,
    /// Jobs waiting in the language's queue.
    pub queued: usize,
    /// Containers reused after being proven clean, since start.
    pub reused: u64,
    /// Containers retired (killed, or not proven clean), since start.
    pub retired: u64,
    /// The last error making a container, if the last attempt failed.
    pub last_error: Option<String>,
}

impl PoolStatus {
    /// Whether the pool is idle and full: every container warm, nothing queued.
    pub fn is_full(&self) -> bool {
        self.ready == self.target && self.busy == 0 && self.starting == 0 && self.queued == 0
    }
}
