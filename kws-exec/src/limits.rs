//! Per-job limits (wall time, output) and the sandbox limits of every container of a pool.

use std::time::Duration;

use crate::error::{ConfigError, SubmitError};

/// What one job may use. Memory, pids and disk are properties of the sandbox
/// ([`SandboxLimits`]), the same for every job of an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time from `Started`; past it the job ends with `TimedOut`.
    pub wall_time: Duration,
    /// Bytes of stdout and stderr together; past it the job ends with `OutputLimitExceeded`.
    pub output_bytes: usize,
}

impl Default for Limits {
    /// 5 s of wall time, 64 KiB of output.
    fn default() -> Self {
        Self { wall_time: Duration::from_secs(5), output_bytes: 64 * 1024 }
    }
}

impl Limits {
    /// The largest wall time a job may ask for.
    pub const MAX_WALL_TIME: Duration = Duration::from_secs(60);
    /// The largest output a job may ask for.
    pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

    /// Checks the limits are within what the engine allows (and not zero).
    pub fn validate(&self) -> Result<(), SubmitError> {
        if self.wall_time.is_zero() || self.wall_time > Self::MAX_WALL_TIME {
            return Err(SubmitError::Limit {
                limit: "wall_time",
                value: format!("{:?}", self.wall_time),
                expected: format!("more than 0 and at most {:?}", Self::MAX_WALL_TIME),
            });
        }
        if self.output_bytes == 0 || self.output_bytes > Self::MAX_OUTPUT_BYTES {
            return Err(SubmitError::Limit {
                limit: "output_bytes",
                value: self.output_bytes.to_string(),
                expected: format!("1 to {}", Self::MAX_OUTPUT_BYTES),
            });
        }
        Ok(())
    }
}

/// Limits of every sandbox container: memory (no swap), processes, CPU and the size of each
/// writable tmpfs (work dir, /tmp, /var/tmp, /dev/shm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Memory in bytes, swap included (the tmpfs pages count here too).
    pub memory_bytes: i64,
    /// Processes and threads.
    pub pids: i64,
    /// CPUs, in billionths (1_000_000_000 is one CPU).
    pub nano_cpus: i64,
    /// Size of each writable tmpfs in bytes.
    pub tmpfs_bytes: i64,
}

impl Default for SandboxLimits {
    /// 128 MiB, 64 processes, one CPU, 16 MiB per tmpfs.
    fn default() -> Self {
        Self {
            memory_bytes: 128 * 1024 * 1024,
            pids: 64,
            nano_cpus: 1_000_000_000,
            tmpfs_bytes: 16 * 1024 * 1024,
        }
    }
}

impl SandboxLimits {
    /// Checks every limit is set (Docker reads 0 or -1 as "unlimited").
    pub fn validate(&self) -> Result<(), ConfigError> {
        let checks = [
            ("memory_bytes", self.memory_bytes, 6 * 1024 * 1024, "at least 6 MiB"),
            ("pids", self.pids, 4, "at least 4"),
            ("nano_cpus", self.nano_cpus, 10_000_000, "at least 0.01 CPU"),
            ("tmpfs_bytes", self.tmpfs_bytes, 64 * 1024, "at least 64 KiB"),
        ];
        for (setting, value, min, expected) in checks {
            if value < min {
                return Err(ConfigError::OutOfRange {
                    setting,
                    value: value.to_string(),
                    expected,
                });
            }
        }
        Ok(())
    }
}

/// Bytes a job may still print.
#[derive(Debug)]
#[cfg_attr(not(feature = "docker"), allow(dead_code))]
pub(crate) struct OutputBudget {
    pub(crate) left: usize,
}

#[cfg_attr(not(feature = "docker"), allow(dead_code))]
impl OutputBudget {
    /// How many of `len` new bytes fit; the budget shrinks by that much.
    pub(crate) fn take(&mut self, len: usize) -> usize {
        let fits = len.min(self.left);
        self.left -= fits;
        fits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_budget_cuts_at_the_limit() {
        let mut budget = OutputBudget { left: 10 };
        assert_eq!(budget.take(4), 4);
        assert_eq!(budget.take(10), 6);
        assert_eq!(budget.take(1), 0);
    }

    #[test]
    fn out_of_range_limits_are_refused_by_name() {
        let zero = Limits { wall_time: Duration::ZERO, ..Limits::default() };
        let long = Limits { wall_time: Duration::from_secs(3600), ..Limits::default() };
        let no_output = Limits { output_bytes: 0, ..Limits::default() };
        let huge = Limits { output_bytes: usize::MAX, ..Limits::default() };
        for (limits, name) in
            [(zero, "wall_time"), (long, "wall_time"), (no_output, "output"), (huge, "output")]
        {
            let err = limits.validate().expect_err("refused");
            assert!(err.to_string().contains(name), "{err}");
        }
        Limits::default().validate().expect("defaults are fine");
        SandboxLimits::default().validate().expect("defaults are fine");
        let unlimited = SandboxLimits { pids: -1, ..SandboxLimits::default() };
        assert!(unlimited.validate().expect_err("refused").to_string().contains("pids"));
    }
}
