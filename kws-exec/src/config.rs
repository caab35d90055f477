//! The engine's settings.

use std::{collections::HashMap, time::Duration};

use crate::{
    error::ConfigError,
    language::Languages,
    limits::{Limits, SandboxLimits},
    rate::RateLimit,
};

/// How an exec engine runs: its languages, pool and queue sizes, limits and labels.
#[derive(Debug, Clone)]
pub struct ExecConfig {
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
    /// Largest source accepted, in bytes (it travels as one argument: at most 96 KiB).
    pub max_source_bytes: usize,
    /// Largest stdin accepted, in bytes (it travels as one argument: at most 96 KiB).
    pub max_stdin_bytes: usize,
    /// Labels added to every container, on top of the engine's own `kws.exec*` labels.
    pub labels: HashMap<String, String>,
}

impl Default for ExecConfig {
    /// python3 and sh, 5 warm containers each, 100 queued jobs per language, 8 jobs at once,
    /// 5 jobs/s per user with bursts of 20, results kept 10 minutes.
    fn default() -> Self {
        Self {
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

/// The most bytes one argument of a process may have on Linux is 128 KiB; source and stdin
/// stay well under it.
const MAX_ARGUMENT_BYTES: usize = 96 * 1024;

impl ExecConfig {
    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let counts = [
            ("pool_size", self.pool_size, 1, 64, "1 to 64"),
            ("queue_capacity", self.queue_capacity, 1, 1_000_000, "1 to 1000000"),
            ("max_concurrent", self.max_concurrent, 1, 1024, "1 to 1024"),
            ("max_source_bytes", self.max_source_bytes, 1, MAX_ARGUMENT_BYTES, "1 to 98304"),
            ("max_stdin_bytes", self.max_stdin_bytes, 0, MAX_ARGUMENT_BYTES, "0 to 98304"),
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
    use crate::*;

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
