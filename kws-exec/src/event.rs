//! The events of one job, in the order they happen.

/// One event of a job. A job's stream is `Queued`, then `Started`, then any number of
/// `Stdout`/`Stderr` chunks, then exactly one terminal event (`Exited`, `TimedOut`,
/// `OutputLimitExceeded`, `Killed` or `Failed`), after which nothing follows. A job that fails
/// before it starts goes from `Queued` straight to `Failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobEvent {
    /// Accepted; `position` jobs of the same language were waiting ahead of it.
    Queued {
        /// Jobs ahead of this one in its language's queue.
        position: usize,
    },
    /// A sandbox took the job; its wall clock starts here.
    Started,
    /// A chunk of standard output, as it was written.
    Stdout(Vec<u8>),
    /// A chunk of standard error, as it was written.
    Stderr(Vec<u8>),
    /// The program exited by itself with `code` after `wall_ms` milliseconds.
    Exited {
        /// The exit status.
        code: i64,
        /// Wall-clock milliseconds from `Started`.
        wall_ms: u64,
    },
    /// The wall-time limit passed; the sandbox was killed.
    TimedOut,
    /// Output passed its limit; what was within the limit was sent, the sandbox was killed.
    OutputLimitExceeded,
    /// The program was killed by a signal (the memory limit, or the sandbox dying).
    Killed {
        /// Why, for the user.
        reason: String,
    },
    /// The engine could not run the job (not the program's fault).
    Failed {
        /// What went wrong.
        error: String,
    },
}

impl JobEvent {
    /// Whether this event ends the job.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Exited { .. }
                | Self::TimedOut
                | Self::OutputLimitExceeded
                | Self::Killed { .. }
                | Self::Failed { .. }
        )
    }
}
