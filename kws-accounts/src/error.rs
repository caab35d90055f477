//! The errors of accounts.

use std::time::Duration;

/// What went wrong. Every authentication failure that could tell an attacker which part was
/// wrong (no such user, wrong password, unknown token) is the one [`Error::Unauthenticated`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The credentials are wrong, unknown, expired or revoked.
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// Too many failed logins for this account or from this address.
    #[error("too many failed logins; retry after {retry_after:?}")]
    Throttled {
        /// When a new attempt may be made.
        retry_after: Duration,
    },
    /// A value was refused; `field` names it.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// No such token or session of this user.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: &'static str,
    },
    /// The store failed.
    #[error("account store ({backend}): {source}")]
    Backend {
        /// The store.
        backend: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
