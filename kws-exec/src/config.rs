//! The engine's settings.

use std::{collections::HashMap, time::Duration};

use crate::{
    error::ConfigError,
    language::Languages,
    limits::{Limits, SandboxLimits},
    rate::RateLimit,
};

/// What starts each job inside a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobRunner {
    /// The default: a resident supervisor (`kws-exec-supervisor`, which `scripts/images` puts
    /// in the language images at [`SUPERVISOR_PATH`](crate::SUPERVISOR_PATH)) is the sandbox's
    /// process 1 and runs every job over the container's attached stdio. No `docker exec` per
    /// job: a job costs little more than its interpreter's start, wall time and output caps
    /// leave the sandbox reusable, `Exited` comes when the main process ends, and no process
    /// of the job is left when it is recorded. The sandbox needs `CAP_KILL`, `CAP_SETUID` and
    /// `CAP_SETGID` (the supervisor keeps them, under its own uid; jobs never get them) and the
    /// supervisor in its image.
    #[default]
    Supervisor,
    /// The fallback for an engine that refuses those settings or an image without the
    /// supervisor: process 1 is an idle `sleep`, each job's process is started ahead by a
    /// `docker exec` (about 45 ms of CPU per job), and a job that hits a limit or leaves a
    /// process behind costs its sandbox.
    DockerExec,
}

/// How an exec engine runs: its languages, pool and queue sizes, limits and labels.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// What starts each job in a sandbox.
    pub runner: JobRunner,
    /// The languages served, each with its own pool and queue.
    pub languages: Languages,
    /// Warm containers per language (also the most jobs of one language at once).
    pub pool_size: usize,
    /// Jobs that may wait per language; past it `submit` says `Busy`.
    pub queue_capacity: usize,
    /// Jobs running at once, all languages together.
    pub max_concurrent: usize,
    /// Each user's token bucket.
    pub rate: RateLimit,
    /// How long a finished job's events stay retrievable.
    pub retention: Duration,
    /// Limits of every sandbox container.
    pub sandbox: SandboxLimits,
    /// Limits of a job that asks for none.
    pub default_limits: Limits,
    /// Largest source accepted, in bytes (at most 96 KiB).
    pub max_source_bytes: usize,
    /// Largest stdin accepted, in bytes (at most 96 KiB).
    pub max_stdin_bytes: usize,
    /// Labels added to every container, on top of the engine's own `kws.exec*` labels.
    pub labels: HashMap<String, String>,
}

impl Default for ExecConfig {
    /// The supervisor runner, python3 and sh, 5 warm containers each, 100 queued jobs per language, 8 jobs at once,
    /// 5 jobs/s per user with bursts of 20, results kept 10 minutes.
    fn default() -> Self {
        Self {
            runner: JobRunner::default(),
            languages: Languages::default(),
            pool_size: 5,
            queue_capacity: 100,
            max_concurrent: 8,
            rate: RateLimit::default(),
            retention: Duration::from_secs(600),
            sandbox: SandboxLimits::default(),
            default_limits: Limits::default(),
            max_source_bytes: 64 * 1024,
            max_stdin_bytes: 64 * 1024,
            labels: HashMap::new(),
        }
    }
}

/// Source and stdin travel as one shell line of the armed process (`docker exec` runner) or in
/// one frame (supervisor); both stay well under the frame's and a shell's limits.
const MAX_INPUT_BYTES: usize = 96 * 1024;

impl ExecConfig {
    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let counts = [
            ("pool_size", self.pool_size, 1, 64, "1 to 64"),
            ("queue_capacity", self.queue_capacity, 1, 1_000_000, "1 to 1000000"),
            ("max_concurrent", self.max_concurrent, 1, 1024, "1 to 1024"),
            ("max_source_bytes", self.max_source_bytes, 1, MAX_INPUT_BYTES, "1 to 98304"),
            ("max_stdin_bytes", self.max_stdin_bytes, 0, MAX_INPUT_BYTES, "0 to 98304"),
        ];
        for (setting, value, min, max, expected) in counts {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::OutOfRange {
                    setting,
                    value: value.to_string(),
                    expected,
                });
            }
        }
        self.rate.validate()?;
        self.sandbox.validate()?;
        self.default_limits.validate().map_err(|e| ConfigError::OutOfRange {
            setting: "default_limits",
            value: e.to_string(),
            expected: "limits a job could ask for",
        })?;
        if let Some(key) = self.labels.keys().find(|k| k.starts_with("kws.exec")) {
            return Err(ConfigError::OutOfRange {
                setting: "labels",
                value: key.clone(),
                expected: "labels outside the engine's own kws.exec* namespace",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_settings_are_refused_by_name() {
        ExecConfig::default().validate().expect("defaults are valid");
        let cases: Vec<(ExecConfig, &str)> = vec![
            (ExecConfig { pool_size: 0, ..ExecConfig::default() }, "pool_size"),
            (ExecConfig { queue_capacity: 0, ..ExecConfig::default() }, "queue_capacity"),
            (ExecConfig { max_concurrent: 0, ..ExecConfig::default() }, "max_concurrent"),
            (ExecConfig { max_source_bytes: 200_000, ..ExecConfig::default() }, "source"),
            (
                ExecConfig {
                    labels: HashMap::from([("kws.exec.engine".into(), "x".into())]),
                    ..ExecConfig::default()
                },
                "labels",
            ),
        ];
        for (config, name) in cases {
            let err = config.validate().expect_err("refused");
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
