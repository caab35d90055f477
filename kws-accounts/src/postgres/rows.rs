//! Rows as PostgreSQL answers them, checked into records: a row that does not make a record
//! (a user name that is not a lowercase DNS label, a digest that is not 32 bytes, unknown
//! scopes) is a `Backend` error naming its table and column, never a record made up.

use chrono::{DateTime, Utc};
use kws_core::DnsLabel;
use uuid::Uuid;

use crate::{Error, GrantKind, GrantRecord, SecretHash, SessionRecord, TokenRecord, TokenScopes};

/// `id, user_name, hash, created_at, expires_at` of `kws_accounts.sessions`.
pub(super) type SessionRow = (Uuid, String, Vec<u8>, DateTime<Utc>, DateTime<Utc>);

/// `id, user_name, name, hash, scopes, created_at, expires_at, revoked_at` of
/// `kws_accounts.tokens`.
pub(super) type TokenRow = (
    Uuid,
    String,
    String,
    Vec<u8>,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// `hash, kind, session_id, user_name, host, expires_at` of `kws_accounts.grants`.
pub(super) type GrantRow = (Vec<u8>, String, Uuid, String, String, DateTime<Utc>);

/// A failure of PostgreSQL (or of the migrations).
pub(super) fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Backend { backend: "postgres", source: Box::new(e) }
}

fn corrupt(table: &str, column: &str, why: impl std::fmt::Display) -> Error {
    Error::Backend {
        backend: "postgres",
        source: format!("corrupt row in kws_accounts.{table}: column {column}: {why}").into(),
    }
}

fn user(table: &str, raw: String) -> Result<DnsLabel, Error> {
    match DnsLabel::parse(&raw) {
        // `parse` lowercases: a stored name in capitals is not the name of any user.
        Ok(label) if label.as_str() == raw => Ok(label),
        Ok(_) => Err(corrupt(table, "user_name", format!("{raw:?} is not lowercase"))),
        Err(e) => Err(corrupt(table, "user_name", e)),
    }
}

fn hash(table: &str, raw: Vec<u8>) -> Result<SecretHash, Error> {
    let len = raw.len();
    let bytes = <[u8; 32]>::try_from(raw)
        .map_err(|_| corrupt(table, "hash", format!("{len} bytes, not 32")))?;
    Ok(SecretHash(bytes))
}

pub(super) fn session(row: SessionRow) -> Result<SessionRecord, Error> {
    let (id, user_name, digest, created_at, expires_at) = row;
    Ok(SessionRecord {
        id,
        user: user("sessions", user_name)?,
        hash: hash("sessions", digest)?,
        created_at,
        expires_at,
    })
}

pub(super) fn token(row: TokenRow) -> Result<TokenRecord, Error> {
    let (id, user_name, name, digest, scopes, created_at, expires_at, revoked_at) = row;
    let parsed = TokenScopes::parse(&scopes).map_err(|e| corrupt("tokens", "scopes", e))?;
    Ok(TokenRecord {
        id,
        user: user("tokens", user_name)?,
        name,
        hash: hash("tokens", digest)?,
        scopes: parsed,
        created_at,
        expires_at,
        revoked_at,
    })
}

pub(super) fn grant(row: GrantRow) -> Result<GrantRecord, Error> {
    let (digest, kind, session, user_name, host, expires_at) = row;
    Ok(GrantRecord {
        hash: hash("grants", digest)?,
        kind: GrantKind::parse(&kind).ok_or_else(|| corrupt("grants", "kind", &kind))?,
        session,
        user: user("grants", user_name)?,
        host,
        expires_at,
    })
}
