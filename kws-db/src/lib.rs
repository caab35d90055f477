//! kws-db creates PostgreSQL databases for users, each owned by a role of its own that can do
//! everything inside that database and nothing outside it. The [`DatabaseProvisioner`] trait is
//! the contract; the PostgreSQL backend ([`postgres::PostgresProvisioner`], feature
//! `postgres`) uses an admin connection to a server the platform runs.
//!
//! ```no_run
//! # #[cfg(feature = "postgres")]
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use kws_db::{DatabaseProvisioner, postgres::PostgresProvisioner};
//!
//! let admin = "postgres://postgres:secret@127.0.0.1:5432/postgres".parse()?;
//! let provisioner = PostgresProvisioner::builder(admin).build().await?;
//! let creds = provisioner.create(&"alice".parse()?, &"shop".parse()?).await?;
//! println!("connect with {}", creds.url());
//! # Ok(())
//! # }
//! ```

mod credentials;
mod error;
mod ext;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use credentials::{Credentials, DatabaseInfo, Password};
pub use error::Error;
pub use ext::{DatabaseProvisionerExt, parse_name};

use std::fmt::Debug;

use kws_core::{DnsLabel, OwnerId};

/// Creates and removes databases, each with one login role that owns it.
///
/// A database is named by its owner and a [`DnsLabel`]; two owners may use the same name.
///
/// # Contract
/// - `create` returns the only copy of the password: the server keeps a SCRAM-SHA-256
///   verifier, the provisioner keeps nothing. The password is random, at least 128 bits strong.
/// - The role of a database can log in (up to a connection limit), owns its database, and has
///   no superuser, createdb, createrole, replication or bypassrls attribute. `CONNECT` and
///   `TEMPORARY` on the database are revoked from `PUBLIC`, as is `CREATE` on its `public`
///   schema: no other tenant can connect to it or create objects in it.
/// - `create` is atomic: when it fails, neither the database, the role nor the bookkeeping of
///   the name is left behind, and the owner's quota is unchanged. Should undoing fail too (the
///   server went away), the error is [`Error::CleanupPending`] and the owner's next call
///   finishes the undoing first; the same holds after a crash in the middle of `create`.
/// - At most the configured number of databases exist per owner; `create` beyond it fails with
///   [`Error::QuotaExceeded`]. A duplicate `(owner, name)` fails with [`Error::AlreadyExists`].
/// - `drop_database` ends the database's sessions, then removes the database and its role; a
///   connected tenant does not block it. Dropping an unknown database is [`Error::NotFound`]
///   (it is not idempotent, so a caller learns that the name was wrong).
/// - `rotate_password` replaces the password: the old one stops working for new connections
///   at once, the returned one works. Sessions already open stay open.
/// - `list` returns the owner's databases, oldest first; the bookkeeping is persistent, so a
///   new provisioner on the same backend sees the same list and enforces the same quota.
/// - `create`, `drop_database` and `rotate_password` for one owner are serialised, across
///   processes; for different owners they run in parallel.
#[async_trait::async_trait]
pub trait DatabaseProvisioner: Send + Sync + Debug + 'static {
    /// Creates database `name` for `owner` and returns how to connect to it.
    async fn create(&self, owner: &OwnerId, name: &DnsLabel) -> Result<Credentials, Error>;

    /// Ends the sessions of `owner`'s database `name`, then drops the database and its role.
    ///
    /// (Not `drop`: a method of that name cannot be called on a `Box` or an `Arc`, whose
    /// destructor it would shadow.)
    async fn drop_database(&self, owner: &OwnerId, name: &DnsLabel) -> Result<(), Error>;

    /// `owner`'s databases, oldest first.
    async fn list(&self, owner: &OwnerId) -> Result<Vec<DatabaseInfo>, Error>;

    /// Gives the role of `owner`'s database `name` a new random password and returns the new
    /// credentials.
    async fn rotate_password(&self, owner: &OwnerId, name: &DnsLabel)
    -> Result<Credentials, Error>;
}
