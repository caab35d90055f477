//! kws-accounts: who is calling kws. Passwords hashed with argon2id, dashboard sessions and
//! scoped API tokens (256 random bits, stored only as SHA-256, shown once), and login
//! throttling per account and per address.
//!
//! This crate answers *who* a request comes from ([`Authenticated`]); *what* that user may do
//! in a tenant is the Platform's (its users, memberships and `Scope`). A user here is named by
//! the same login name as the Platform's user.
//!
//! - [`AccountStore`] keeps the rows: password hashes, sessions, tokens. [`MemoryAccountStore`]
//!   and `PostgresAccountStore` (feature `postgres`, schema `kws_accounts`) pass the same
//!   conformance suite (feature `testkit`).
//! - Host grants ([`GrantRecord`]) let a session into a host of its own (an instance's IDE):
//!   a one-time ticket from the dashboard, traded there for a host-only cookie.
//! - [`Accounts`] is the service a front end calls: it hashes, throttles, generates secrets
//!   and checks expiry and revocation.
//!
//! Secrets ([`Secret`]) never print: `Debug` and `Display` redact them.

mod error;
mod grant;
mod memory;
mod password;
#[cfg(feature = "postgres")]
mod postgres;
mod secret;
mod service;
mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
mod throttle;
mod token;

pub use error::Error;
pub use grant::{GrantKind, GrantRecord, normalize_host};
pub use memory::MemoryAccountStore;
pub use password::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
#[cfg(feature = "postgres")]
pub use postgres::PostgresAccountStore;
pub use secret::{Secret, SecretHash};
pub use service::{
    AccountSettings, Accounts, Authenticated, NewGrant, NewSession, NewToken, TICKET_PREFIX,
    TOKEN_PREFIX, Via,
};
pub use store::{AccountStore, SessionRecord, TokenRecord};
pub use token::{TokenScope, TokenScopes};
