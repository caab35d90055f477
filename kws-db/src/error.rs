//! The crate's error.

use kws_core::{DnsLabel, OwnerId, ParseError};

/// Why a provisioner operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name given as a string is not a DNS label (injection characters, spaces, quotes,
    /// empty, longer than 63 bytes).
    #[error(transparent)]
    InvalidName(#[from] ParseError),
    /// A name given as a string has uppercase letters: it would not be the name the owner sees
    /// in the connection URL (PostgreSQL and DNS labels are lowercase here).
    #[error("invalid {what} \"{value}\": uppercase letters are not allowed (use \"{lowercase}\")")]
    Uppercase {
        /// Which name (`"owner id"` or `"database name"`).
        what: &'static str,
        /// The value as given (escaped).
        value: String,
        /// The value the caller probably meant.
        lowercase: String,
    },
    /// The owner already has a database of that name.
    #[error("owner {owner} already has a database named {name}")]
    AlreadyExists {
        /// The owner.
        owner: OwnerId,
        /// The name.
        name: DnsLabel,
    },
    /// The owner has no database of that name.
    #[error("owner {owner} has no database named {name}")]
    NotFound {
        /// The owner.
        owner: OwnerId,
        /// The name.
        name: DnsLabel,
    },
    /// The owner already has as many databases as allowed.
    #[error("owner {owner} already has {limit} databases, the most allowed")]
    QuotaExceeded {
        /// The owner.
        owner: OwnerId,
        /// The number of databases allowed per owner.
        limit: u32,
    },
    /// The server already has a database or role of the derived name that the provisioner did
    /// not make (the `kws_` names belong to the provisioner).
    #[error("the server already has a {kind} named \"{identifier}\" that kws-db did not create")]
    IdentifierTaken {
        /// `"role"` or `"database"`.
        kind: &'static str,
        /// The identifier.
        identifier: String,
    },
    /// An operation failed and undoing its first steps failed too; what is left is recorded and
    /// is removed by the next call for the same owner.
    #[error("{cause}; cleaning up failed too ({cleanup}), the next call for this owner retries")]
    CleanupPending {
        /// Why the operation failed.
        cause: Box<Error>,
        /// Why cleaning up failed.
        cleanup: Box<Error>,
    },
    /// The backend failed.
    #[error("{backend} backend: {source}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// What it said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
