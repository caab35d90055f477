//! The exec engine's errors.

use std::time::Duration;

use kws_core::{DnsLabel, OwnerId};

/// A configuration the engine cannot run with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A language's configuration is unusable.
    #[error("language {language}: {why}")]
    Language {
        /// The language's name.
        language: String,
        /// What is wrong.
        why: String,
    },
    /// No language is configured.
    #[error("no language is configured")]
    NoLanguages,
    /// A numeric setting is out of range.
    #[error("setting {setting} = {value} is out of range: {expected}")]
    OutOfRange {
        /// The setting's name.
        setting: &'static str,
        /// The value given.
        value: String,
        /// The accepted range.
        expected: &'static str,
    },
}

/// Why a submission was refused. Nothing is queued and no event is recorded when `submit`
/// returns one of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The language is not configured.
    #[error("unknown language {0}")]
    UnknownLanguage(DnsLabel),
    /// The language's queue is full; retry later (HTTP 503).
    #[error("busy: the {language} queue holds its maximum of {capacity} jobs")]
    Busy {
        /// The language whose queue is full.
        language: DnsLabel,
        /// The queue's capacity.
        capacity: usize,
    },
    /// The user spent their token bucket; retry after the given time (HTTP 429).
    #[error("user {user} is over their rate limit; retry in {retry_after:?}")]
    RateLimited {
        /// The user.
        user: OwnerId,
        /// When a token will be there again.
        retry_after: Duration,
    },
    /// The source or stdin breaks a rule (too long, or holds a NUL byte).
    #[error("{what} is refused: {why}")]
    Input {
        /// `source` or `stdin`.
        what: &'static str,
        /// The rule it breaks.
        why: String,
    },
    /// A limit is out of the range the engine allows.
    #[error("limit {limit} = {value} is out of range: {expected}")]
    Limit {
        /// The limit's name.
        limit: &'static str,
        /// The value asked for.
        value: String,
        /// The accepted range.
        expected: String,
    },
    /// The engine has shut down.
    #[error("the exec engine has shut down")]
    ShutDown,
    /// The job queue failed.
    #[error("job queue: {0}")]
    Queue(#[from] QueueError),
}

/// An error of a `JobQueue` backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The language's queue is at capacity.
    #[error("the {language} queue is full ({capacity} jobs)")]
    Full {
        /// The language.
        language: DnsLabel,
        /// The capacity.
        capacity: usize,
    },
    /// No delivery with this tag is outstanding (already acked, or never delivered).
    #[error("no outstanding delivery {tag}")]
    UnknownDelivery {
        /// The delivery tag.
        tag: u64,
    },
    /// The backend failed (connection, protocol).
    #[error("queue backend {backend}: {message}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// What went wrong.
        message: String,
    },
}
