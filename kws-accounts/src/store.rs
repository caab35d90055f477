//! The rows of accounts and the trait their stores implement.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use kws_core::DnsLabel;
use uuid::Uuid;

use crate::{Error, GrantRecord, SecretHash, TokenScopes};

/// A dashboard session: a server-side row that a cookie names by its secret's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session's id (for listing and ending it; not the cookie).
    pub id: Uuid,
    /// The user signed in.
    pub user: DnsLabel,
    /// SHA-256 of the cookie's value.
    pub hash: SecretHash,
    /// When the session began.
    pub created_at: DateTime<Utc>,
    /// When it ends on its own.
    pub expires_at: DateTime<Utc>,
}

/// An API token's row: everything but the secret, which is kept only as its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token's id.
    pub id: Uuid,
    /// The user the token acts as.
    pub user: DnsLabel,
    /// A name for people (`laptop`, `ci`), 1..=64 printable characters.
    pub name: String,
    /// SHA-256 of the token.
    pub hash: SecretHash,
    /// What the token may do.
    pub scopes: TokenScopes,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working on its own (`None`: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked (`None`: it was not).
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Where the rows of accounts live. Every method is one atomic change or read; the service
/// ([`crate::Accounts`]) does the checks (expiry, revocation, throttling).
///
/// Contract (the `testkit` suite checks it on every store):
/// - a session or token is found by its digest only while its row exists; ids are unique;
/// - `revoke_token` and `delete_session` touch only the named user's row: another user's id
///   is `NotFound`, exactly like an unknown one;
/// - `delete_user` removes the user's password, sessions, grants and tokens in one change;
/// - a grant lives only as long as its session: whatever removes a session (`delete_session`,
///   `set_password`, `delete_user`, `purge_expired`) removes its grants in the same change,
///   and `insert_grant` of a session that is gone adds nothing;
/// - `take_ticket` answers a ticket to one caller only, however many ask at once;
/// - `purge_expired` removes the sessions, grants and tokens that expired (or tokens revoked)
///   before `before`, and counts them.
#[async_trait::async_trait]
pub trait AccountStore: Send + Sync + Debug {
    /// Sets the user's password hash (a PHC string), replacing any, and removes every session
    /// of the user in the same change.
    async fn set_password(&self, user: &DnsLabel, phc: &str) -> Result<(), Error>;
    /// The user's password hash, if one is set.
    async fn password(&self, user: &DnsLabel) -> Result<Option<String>, Error>;
    /// Adds a session.
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), Error>;
    /// The session whose cookie digests to `hash`.
    async fn session_by_hash(&self, hash: &SecretHash) -> Result<Option<SessionRecord>, Error>;
    /// Removes the session `id` of `user`; `NotFound` when the user has none of that id.
    async fn delete_session(&self, user: &DnsLabel, id: Uuid) -> Result<(), Error>;
    /// Adds a grant of the session `grant.session`; `NotFound { what: "session" }`, adding
    /// nothing, when that session is gone.
    async fn insert_grant(&self, grant: &GrantRecord) -> Result<(), Error>;
    /// Removes the ticket that digests to `hash` and answers it (expired or not); `None` when
    /// there is none, or another caller took it first.
    async fn take_ticket(&self, hash: &SecretHash) -> Result<Option<GrantRecord>, Error>;
    /// The cookie grant that digests to `hash`, when it and its session both last past `at`.
    async fn cookie_grant(
        &self,
        hash: &SecretHash,
        at: DateTime<Utc>,
    ) -> Result<Option<GrantRecord>, Error>;
    /// Adds a token.
    async fn insert_token(&self, token: &TokenRecord) -> Result<(), Error>;
    /// The token that digests to `hash` (revoked and expired ones included).
    async fn token_by_hash(&self, hash: &SecretHash) -> Result<Option<TokenRecord>, Error>;
    /// The user's tokens, newest first (revoked and expired ones included).
    async fn tokens_of(&self, user: &DnsLabel) -> Result<Vec<TokenRecord>, Error>;
    /// Marks the token `id` of `user` revoked at `at` (kept revoked at its first time when
    /// revoked again) and answers it; `NotFound` when the user has no token of that id.
    async fn revoke_token(
        &self,
        user: &DnsLabel,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<TokenRecord, Error>;
    /// Removes everything of `user`.
    async fn delete_user(&self, user: &DnsLabel) -> Result<(), Error>;
    /// Removes sessions and tokens that ended before `before`; answers how many.
    async fn purge_expired(&self, before: DateTime<Utc>) -> Result<u64, Error>;
}
