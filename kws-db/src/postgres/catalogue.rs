//! The catalogue: kws-db's own table in the admin database (`kws_db.databases`), the record of
//! which databases exist for whom. Its schema comes from the crate's migrations.

use chrono::{DateTime, Utc};
use kws_core::{DnsLabel, OwnerId};
use sqlx::{PgConnection, Row};

use super::{PgIdent, backend};
use crate::{DatabaseInfo, Error};

/// The schema that holds the catalogue and its migration history (so kws-db's migrations never
/// meet another crate's in the same database).
pub(crate) const SCHEMA: &str = "kws_db";

/// Where an operation on a row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Creating,
    Ready,
    Dropping,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Creating => "creating",
            State::Ready => "ready",
            State::Dropping => "dropping",
        }
    }
}

/// Records `(owner, name)` as being created, after checking for a duplicate and the quota.
pub(crate) async fn reserve(
    conn: &mut PgConnection,
    owner: &OwnerId,
    name: &DnsLabel,
    ident: &PgIdent,
    quota: u32,
) -> Result<(), Error> {
    if state(conn, owner, name).await?.is_some() {
        return Err(Error::AlreadyExists { owner: owner.clone(), name: name.clone() });
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM kws_db.databases WHERE owner = $1")
        .bind(owner.as_str())
        .fetch_one(&mut *conn)
        .await
        .map_err(backend)?;
    if count >= i64::from(quota) {
        return Err(Error::QuotaExceeded { owner: owner.clone(), limit: quota });
    }
    let inserted = sqlx::query(
        "INSERT INTO kws_db.databases (owner, name, pg_name, state) VALUES ($1, $2, $3, $4)",
    )
    .bind(owner.as_str())
    .bind(name.as_str())
    .bind(ident.as_str())
    .bind(State::Creating.as_str())
    .execute(&mut *conn)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        // The owner is locked, so a unique violation is on pg_name: another pair's identifier.
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(Error::IdentifierTaken { kind: "catalogue entry", identifier: ident.to_string() })
        }
        Err(e) => Err(backend(e)),
    }
}

/// The state of `(owner, name)`'s row, if there is one.
pub(crate) async fn state(
    conn: &mut PgConnection,
    owner: &OwnerId,
    name: &DnsLabel,
) -> Result<Option<State>, Error> {
    let raw: Option<String> =
        sqlx::query_scalar("SELECT state FROM kws_db.databases WHERE owner = $1 AND name = $2")
            .bind(owner.as_str())
            .bind(name.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)?;
    Ok(raw.map(|s| match s.as_str() {
        "ready" => State::Ready,
        "creating" => State::Creating,
        _ => State::Dropping,
    }))
}

/// Moves `(owner, name)`'s row to `to`; returns the row's creation time.
pub(crate) async fn set_state(
    conn: &mut PgConnection,
    owner: &OwnerId,
    name: &DnsLabel,
    to: State,
) -> Result<DateTime<Utc>, Error> {
    let sql = if to == State::Ready {
        // The database exists from now on; its age counts from here.
        "UPDATE kws_db.databases SET state = $3, created_at = now() \
         WHERE owner = $1 AND name = $2 RETURNING created_at"
    } else {
        "UPDATE kws_db.databases SET state = $3 WHERE owner = $1 AND name = $2 RETURNING created_at"
    };
    sqlx::query_scalar(sql)
        .bind(owner.as_str())
        .bind(name.as_str())
        .bind(to.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?
        .ok_or_else(|| Error::NotFound { owner: owner.clone(), name: name.clone() })
}

/// Deletes `(owner, name)`'s row.
pub(crate) async fn forget(
    conn: &mut PgConnection,
    owner: &OwnerId,
    name: &DnsLabel,
) -> Result<(), Error> {
    sqlx::query("DELETE FROM kws_db.databases WHERE owner = $1 AND name = $2")
        .bind(owner.as_str())
        .bind(name.as_str())
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Names of `owner`'s rows whose operation did not finish.
pub(crate) async fn unfinished(
    conn: &mut PgConnection,
    owner: &OwnerId,
) -> Result<Vec<DnsLabel>, Error> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM kws_db.databases WHERE owner = $1 AND state <> 'ready' ORDER BY name",
    )
    .bind(owner.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    names.iter().map(|n| parse_stored(n)).collect()
}

/// `owner`'s live databases, oldest first.
pub(crate) async fn list(
    conn: &mut PgConnection,
    owner: &OwnerId,
) -> Result<Vec<DatabaseInfo>, Error> {
    let rows = sqlx::query(
        "SELECT name, pg_name, created_at FROM kws_db.databases \
         WHERE owner = $1 AND state = 'ready' ORDER BY created_at, name",
    )
    .bind(owner.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    rows.iter()
        .map(|row| {
            let name: String = row.try_get("name").map_err(backend)?;
            let pg_name: String = row.try_get("pg_name").map_err(backend)?;
            Ok(DatabaseInfo {
                owner: owner.clone(),
                name: parse_stored(&name)?,
                database: pg_name.clone(),
                role: pg_name,
                created_at: row.try_get("created_at").map_err(backend)?,
            })
        })
        .collect()
}

/// A name read back from the catalogue; only `reserve` writes names, so a bad one means the
/// table was edited by hand.
fn parse_stored(raw: &str) -> Result<DnsLabel, Error> {
    DnsLabel::parse(raw).map_err(|e| backend(format!("the catalogue holds a bad name: {e}")))
}
