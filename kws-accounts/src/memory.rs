//! [`MemoryAccountStore`]: the rows of accounts in one process's memory.

use std::{
    collections::{HashMap, HashSet},
    sync::{Mutex, MutexGuard, PoisonError},
};

use chrono::{DateTime, Utc};
use kws_core::DnsLabel;
use uuid::Uuid;

use crate::{AccountStore, Error, GrantKind, GrantRecord, SecretHash, SessionRecord, TokenRecord};

/// Accounts in memory: for `kwsd` on embedded defaults and for tests. One lock over all rows,
/// so every method is atomic.
#[derive(Debug, Default)]
pub struct MemoryAccountStore {
    rows: Mutex<Rows>,
}

#[derive(Debug, Default)]
struct Rows {
    passwords: HashMap<DnsLabel, String>,
    sessions: HashMap<SecretHash, SessionRecord>,
    grants: HashMap<SecretHash, GrantRecord>,
    tokens: HashMap<SecretHash, TokenRecord>,
}

impl MemoryAccountStore {
    fn rows(&self) -> MutexGuard<'_, Rows> {
        self.rows.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Rows {
    /// Removes the sessions `gone` says so of, and their grants.
    fn end_sessions(&mut self, gone: impl Fn(&SessionRecord) -> bool) {
        self.sessions.retain(|_, s| !gone(s));
        let live: HashSet<Uuid> = self.sessions.values().map(|s| s.id).collect();
        self.grants.retain(|_, g| live.contains(&g.session));
    }
}

/// An insert whose id or digest is already there: refused, as PostgreSQL's unique keys
/// refuse it, instead of replacing the row.
fn duplicate(what: &str) -> Error {
    Error::Backend {
        backend: "memory",
        source: format!("a {what} of that id or hash exists").into(),
    }
}

#[async_trait::async_trait]
impl AccountStore for MemoryAccountStore {
    async fn set_password(&self, user: &DnsLabel, phc: &str) -> Result<(), Error> {
        let mut rows = self.rows();
        rows.passwords.insert(user.clone(), phc.to_owned());
        rows.end_sessions(|s| &s.user == user);
        Ok(())
    }

    async fn password(&self, user: &DnsLabel) -> Result<Option<String>, Error> {
        Ok(self.rows().passwords.get(user).cloned())
    }

    async fn insert_session(&self, session: &SessionRecord) -> Result<(), Error> {
        let mut rows = self.rows();
        if rows.sessions.contains_key(&session.hash)
            || rows.sessions.values().any(|s| s.id == session.id)
        {
            return Err(duplicate("session"));
        }
        rows.sessions.insert(session.hash, session.clone());
        Ok(())
    }

    async fn session_by_hash(&self, hash: &SecretHash) -> Result<Option<SessionRecord>, Error> {
        Ok(self.rows().sessions.get(hash).cloned())
    }

    async fn delete_session(&self, user: &DnsLabel, id: Uuid) -> Result<(), Error> {
        let mut rows = self.rows();
        let before = rows.sessions.len();
        rows.end_sessions(|s| s.id == id && &s.user == user);
        if rows.sessions.len() == before {
            return Err(Error::NotFound { what: "session" });
        }
        Ok(())
    }

    async fn insert_grant(&self, grant: &GrantRecord) -> Result<(), Error> {
        let mut rows = self.rows();
        if !rows.sessions.values().any(|s| s.id == grant.session) {
            return Err(Error::NotFound { what: "session" });
        }
        if rows.grants.contains_key(&grant.hash) {
            return Err(duplicate("grant"));
        }
        rows.grants.insert(grant.hash, grant.clone());
        Ok(())
    }

    async fn take_ticket(&self, hash: &SecretHash) -> Result<Option<GrantRecord>, Error> {
        let mut rows = self.rows();
        match rows.grants.get(hash) {
            Some(g) if g.kind == GrantKind::Ticket => Ok(rows.grants.remove(hash)),
            _ => Ok(None),
        }
    }

    async fn cookie_grant(
        &self,
        hash: &SecretHash,
        at: DateTime<Utc>,
    ) -> Result<Option<GrantRecord>, Error> {
        let rows = self.rows();
        let Some(g) = rows.grants.get(hash).filter(|g| g.kind == GrantKind::Cookie) else {
            return Ok(None);
        };
        let lasts = rows.sessions.values().any(|s| s.id == g.session && s.expires_at > at);
        Ok((lasts && g.expires_at > at).then(|| g.clone()))
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), Error> {
        let mut rows = self.rows();
        if rows.tokens.contains_key(&token.hash) || rows.tokens.values().any(|t| t.id == token.id) {
            return Err(duplicate("token"));
        }
        rows.tokens.insert(token.hash, token.clone());
        Ok(())
    }

    async fn token_by_hash(&self, hash: &SecretHash) -> Result<Option<TokenRecord>, Error> {
        Ok(self.rows().tokens.get(hash).cloned())
    }

    async fn tokens_of(&self, user: &DnsLabel) -> Result<Vec<TokenRecord>, Error> {
        let mut found: Vec<_> =
            self.rows().tokens.values().filter(|t| &t.user == user).cloned().collect();
        found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(found)
    }

    async fn revoke_token(
        &self,
        user: &DnsLabel,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<TokenRecord, Error> {
        let mut rows = self.rows();
        let token = rows.tokens.values_mut().find(|t| t.id == id && &t.user == user);
        let token = token.ok_or(Error::NotFound { what: "token" })?;
        token.revoked_at.get_or_insert(at);
        Ok(token.clone())
    }

    async fn delete_user(&self, user: &DnsLabel) -> Result<(), Error> {
        let mut rows = self.rows();
        rows.passwords.remove(user);
        rows.end_sessions(|s| &s.user == user);
        rows.tokens.retain(|_, t| &t.user != user);
        Ok(())
    }

    async fn purge_expired(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        let mut rows = self.rows();
        let count = |rows: &Rows| rows.sessions.len() + rows.grants.len() + rows.tokens.len();
        let n = count(&rows);
        rows.end_sessions(|s| s.expires_at < before);
        rows.grants.retain(|_, g| g.expires_at >= before);
        rows.tokens.retain(|_, t| {
            t.expires_at.is_none_or(|at| at >= before) && t.revoked_at.is_none_or(|at| at >= before)
        });
        Ok((n - count(&rows)) as u64)
    }
}
