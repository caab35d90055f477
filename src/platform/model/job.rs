//! Code-execution jobs, kept as the tenant's history (their output lives in the exec engine's
//! journal for its retention period).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::platform::store::{Kind, Resource};

/// What was submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The language.
    pub language: String,
    /// The size of the source, in bytes.
    pub source_bytes: usize,
    /// The size of stdin, in bytes.
    pub stdin_bytes: usize,
    /// Who submitted it.
    pub submitted_by: Option<String>,
}

impl Resource for JobSpec {
    const KIND: Kind = Kind::Job;
    type Status = JobStatus;
}

/// How the job went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    /// `queued`, `running`, `exited`, `timed_out`, `output_limit_exceeded`, `killed`, `failed`.
    pub state: String,
    /// The exit code, when it exited.
    pub exit_code: Option<i64>,
    /// Wall-clock milliseconds, when it exited.
    pub wall_ms: Option<u64>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
}
