//! The Platform's one error: every failure of a flow, the store or the configuration, with a
//! stable [`ErrorKind`] that front ends map to their own codes (the API's status table).

use std::time::Duration;

use crate::platform::scope::Role;

/// A failure of the Platform.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No such object in the caller's scope (also when it exists in another tenant: a caller
    /// never learns of other tenants' objects).
    #[error("{kind} {name} not found")]
    NotFound {
        /// What was looked for (`instance`, `app`, `tenant`, ...).
        kind: &'static str,
        /// Its name or id.
        name: String,
    },
    /// An object of that name (or hostname, or key) exists.
    #[error("{kind} {name} already exists")]
    AlreadyExists {
        /// What was made.
        kind: &'static str,
        /// The taken name.
        name: String,
    },
    /// A write carried a stale version: someone changed the object since it was read.
    #[error("{kind} {name} changed: version {expected} was expected, it is at {actual}")]
    Conflict {
        /// The object's kind.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The version the writer read.
        expected: u64,
        /// The version it has now.
        actual: u64,
    },
    /// A value from outside is malformed or hostile; `field` names where it came in.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field (`name`, `image`, `resources.cpus`, ...).
        field: &'static str,
        /// Why it was refused (the value, escaped, is part of it).
        reason: String,
    },
    /// The tenant's quota has no room for this.
    #[error("tenant {tenant} is at its quota of {limit} {resource}")]
    QuotaExceeded {
        /// The tenant.
        tenant: String,
        /// What ran out (`instances`, `cpus`, `memory_mb`, ...).
        resource: &'static str,
        /// The quota.
        limit: u64,
    },
    /// It cannot go while something still uses it (a tenant that owns objects).
    #[error("{what} is still in use: {reason}")]
    InUse {
        /// What was to be removed.
        what: String,
        /// What still uses it.
        reason: String,
    },
    /// A shared pool (addresses, subnets) is used up.
    #[error("{0} is exhausted")]
    Exhausted(String),
    /// The caller is a member of the tenant, but its role does not allow this.
    #[error("this needs the {need} role")]
    Forbidden {
        /// The role it needs.
        need: Role,
    },
    /// An idempotency key came back with another request than the one it was first used with.
    #[error("idempotency key {key:?} was used for another request")]
    IdempotencyMismatch {
        /// The key.
        key: String,
    },
    /// A feature whose backend is not configured or not reachable.
    #[error("{feature} is unavailable: {reason}")]
    Unavailable {
        /// The feature (`instances`, `code execution`, `databases`).
        feature: &'static str,
        /// What is missing.
        reason: String,
    },
    /// Too many requests of the caller; try again after the delay.
    #[error("rate limited: retry after {retry_after:?}")]
    RateLimited {
        /// When a retry can succeed.
        retry_after: Duration,
    },
    /// The backend is overloaded (a full queue); try again after the delay.
    #[error("busy: retry after {retry_after:?}")]
    Busy {
        /// A suggested delay.
        retry_after: Duration,
    },
    /// The operation was cancelled; what it had done was undone.
    #[error("operation {0} was cancelled")]
    Cancelled(String),
    /// The operation passed its deadline; what it had done was undone.
    #[error("operation {0} passed its deadline")]
    DeadlineExceeded(String),
    /// A step of a flow failed; the finished steps were undone (the operation is `compensated`).
    #[error("{step} failed: {source}")]
    StepFailed {
        /// The step.
        step: &'static str,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// A backend failed in a way the caller cannot fix.
    #[error("{component}: {source}")]
    Backend {
        /// Which part (`store`, `runtime`, `vpn`, `proxy`, `firewall`, `databases`, `exec`).
        component: &'static str,
        /// What it said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] crate::platform::config::ConfigError),
}

/// The kind of an [`Error`], stable across releases: what front ends map to codes and statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::NotFound`].
    NotFound,
    /// [`Error::AlreadyExists`].
    AlreadyExists,
    /// [`Error::Conflict`].
    Conflict,
    /// [`Error::Invalid`].
    Invalid,
    /// [`Error::QuotaExceeded`].
    QuotaExceeded,
    /// [`Error::InUse`].
    InUse,
    /// [`Error::Exhausted`].
    Exhausted,
    /// [`Error::Forbidden`].
    Forbidden,
    /// [`Error::IdempotencyMismatch`].
    IdempotencyMismatch,
    /// [`Error::Unavailable`].
    Unavailable,
    /// [`Error::RateLimited`].
    RateLimited,
    /// [`Error::Busy`].
    Busy,
    /// [`Error::Cancelled`].
    Cancelled,
    /// [`Error::DeadlineExceeded`].
    DeadlineExceeded,
    /// [`Error::Backend`].
    Backend,
    /// [`Error::Config`].
    Config,
}

impl Error {
    /// The stable kind; a failed step has the kind of its cause.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Invalid { .. } => ErrorKind::Invalid,
            Error::QuotaExceeded { .. } => ErrorKind::QuotaExceeded,
            Error::InUse { .. } => ErrorKind::InUse,
            Error::Exhausted(_) => ErrorKind::Exhausted,
            Error::Forbidden { .. } => ErrorKind::Forbidden,
            Error::IdempotencyMismatch { .. } => ErrorKind::IdempotencyMismatch,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::RateLimited { .. } => ErrorKind::RateLimited,
            Error::Busy { .. } => ErrorKind::Busy,
            Error::Cancelled(_) => ErrorKind::Cancelled,
            Error::DeadlineExceeded(_) => ErrorKind::DeadlineExceeded,
            Error::StepFailed { source, .. } => source.kind(),
            Error::Backend { .. } => ErrorKind::Backend,
            Error::Config(_) => ErrorKind::Config,
        }
    }

    /// The error a failed step ends in, or the error itself when it is not a step's.
    pub fn root(&self) -> &Error {
        match self {
            Error::StepFailed { source, .. } => source.root(),
            other => other,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl std::fmt::Display) -> Self {
        Error::Invalid { field, reason: reason.to_string() }
    }

    pub(crate) fn not_found(kind: &'static str, name: impl std::fmt::Display) -> Self {
        Error::NotFound { kind, name: name.to_string() }
    }

    pub(crate) fn backend(
        component: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Backend { component, source: source.into() }
    }
}
