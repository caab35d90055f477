//! [`PostgresAccountStore`]: the rows of accounts in PostgreSQL, schema `kws_accounts`.

mod rows;

use chrono::{DateTime, Utc};
use kws_core::DnsLabel;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{AccountStore, Error, GrantRecord, SecretHash, SessionRecord, TokenRecord};
use rows::{GrantRow, SessionRow, TokenRow, backend};

const SESSION: &str =
    "SELECT id, user_name, hash, created_at, expires_at FROM kws_accounts.sessions";
const GRANT_COLUMNS: &str = "hash, kind, session_id, user_name, host, expires_at";
const TOKEN_COLUMNS: &str = "id, user_name, name, hash, scopes, created_at, expires_at, revoked_at";

/// Accounts in PostgreSQL (schema `kws_accounts`, made by the crate's migrations). Every
/// method is one statement or one transaction. Cheap to clone (it holds the pool).
///
/// Sessions are inserted under a share lock of the user's password row, and `set_password`
/// and `delete_user` change that row before they remove sessions: a session inserted while
/// the password changes is either removed by the change or inserted after it commits (where
/// [`crate::Accounts::login`], which reads the password again, refuses it).
#[derive(Debug, Clone)]
pub struct PostgresAccountStore {
    db: PgPool,
}

impl PostgresAccountStore {
    /// Uses `db`, applying the crate's migrations first (idempotent, and safe from many
    /// processes at once: sqlx holds an advisory lock while migrating). Migrations of other
    /// crates recorded in the same database are ignored.
    pub async fn new(db: PgPool) -> Result<Self, Error> {
        let mut migrator = sqlx::migrate!("./migrations");
        // Other crates keep their own migrations in the same database.
        migrator.set_ignore_missing(true);
        migrator.run(&db).await.map_err(backend)?;
        Ok(Self { db })
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.db
    }
}

#[async_trait::async_trait]
impl AccountStore for PostgresAccountStore {
    async fn set_password(&self, user: &DnsLabel, phc: &str) -> Result<(), Error> {
        let mut tx = self.db.begin().await.map_err(backend)?;
        // The password row first (its lock orders this change after any session insert in
        // flight), then the sessions, in a statement of their own so it sees that insert.
        sqlx::query(
            "INSERT INTO kws_accounts.passwords (user_name, phc) VALUES ($1, $2) \
             ON CONFLICT (user_name) DO UPDATE SET phc = EXCLUDED.phc",
        )
        .bind(user.as_str())
        .bind(phc)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query("DELETE FROM kws_accounts.sessions WHERE user_name = $1")
            .bind(user.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn password(&self, user: &DnsLabel) -> Result<Option<String>, Error> {
        sqlx::query_scalar("SELECT phc FROM kws_accounts.passwords WHERE user_name = $1")
            .bind(user.as_str())
            .fetch_optional(&self.db)
            .await
            .map_err(backend)
    }

    async fn insert_session(&self, session: &SessionRecord) -> Result<(), Error> {
        let mut tx = self.db.begin().await.map_err(backend)?;
        sqlx::query("SELECT 1 FROM kws_accounts.passwords WHERE user_name = $1 FOR SHARE")
            .bind(session.user.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO kws_accounts.sessions (id, user_name, hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(session.id)
        .bind(session.user.as_str())
        .bind(&session.hash.0[..])
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn session_by_hash(&self, hash: &SecretHash) -> Result<Option<SessionRecord>, Error> {
        let row: Option<SessionRow> = sqlx::query_as(&format!("{SESSION} WHERE hash = $1"))
            .bind(&hash.0[..])
            .fetch_optional(&self.db)
            .await
            .map_err(backend)?;
        row.map(rows::session).transpose()
    }

    async fn delete_session(&self, user: &DnsLabel, id: Uuid) -> Result<(), Error> {
        let done =
            sqlx::query("DELETE FROM kws_accounts.sessions WHERE id = $1 AND user_name = $2")
                .bind(id)
                .bind(user.as_str())
                .execute(&self.db)
                .await
                .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound { what: "session" });
        }
        Ok(())
    }

    async fn insert_grant(&self, grant: &GrantRecord) -> Result<(), Error> {
        // The foreign key refuses a grant of a session that is gone, and orders this insert
        // before (or after) a removal of that session running beside it.
        let done = sqlx::query(&format!(
            "INSERT INTO kws_accounts.grants ({GRANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(&grant.hash.0[..])
        .bind(grant.kind.as_str())
        .bind(grant.session)
        .bind(grant.user.as_str())
        .bind(&grant.host)
        .bind(grant.expires_at)
        .execute(&self.db)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                Err(Error::NotFound { what: "session" })
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn take_ticket(&self, hash: &SecretHash) -> Result<Option<GrantRecord>, Error> {
        let sql = format!(
            "DELETE FROM kws_accounts.grants WHERE hash = $1 AND kind = 'ticket' \
             RETURNING {GRANT_COLUMNS}"
        );
        let row: Option<GrantRow> = sqlx::query_as(&sql)
            .bind(&hash.0[..])
            .fetch_optional(&self.db)
            .await
            .map_err(backend)?;
        row.map(rows::grant).transpose()
    }

    async fn cookie_grant(
        &self,
        hash: &SecretHash,
        at: DateTime<Utc>,
    ) -> Result<Option<GrantRecord>, Error> {
        let sql = "SELECT g.hash, g.kind, g.session_id, g.user_name, g.host, g.expires_at \
             FROM kws_accounts.grants g JOIN kws_accounts.sessions s ON s.id = g.session_id \
             WHERE g.hash = $1 AND g.kind = 'cookie' AND g.expires_at > $2 AND s.expires_at > $2";
        let row: Option<GrantRow> = sqlx::query_as(sql)
            .bind(&hash.0[..])
            .bind(at)
            .fetch_optional(&self.db)
            .await
            .map_err(backend)?;
        row.map(rows::grant).transpose()
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), Error> {
        sqlx::query(&format!(
            "INSERT INTO kws_accounts.tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(token.id)
        .bind(token.user.as_str())
        .bind(&token.name)
        .bind(&token.hash.0[..])
        .bind(token.scopes.to_string())
        .bind(token.created_at)
        .bind(token.expires_at)
        .bind(token.revoked_at)
        .execute(&self.db)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn token_by_hash(&self, hash: &SecretHash) -> Result<Option<TokenRecord>, Error> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM kws_accounts.tokens WHERE hash = $1");
        let row: Option<TokenRow> = sqlx::query_as(&sql)
            .bind(&hash.0[..])
            .fetch_optional(&self.db)
            .await
            .map_err(backend)?;
        row.map(rows::token).transpose()
    }

    async fn tokens_of(&self, user: &DnsLabel) -> Result<Vec<TokenRecord>, Error> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM kws_accounts.tokens WHERE user_name = $1 \
             ORDER BY created_at DESC, id DESC"
        );
        let found: Vec<TokenRow> =
            sqlx::query_as(&sql).bind(user.as_str()).fetch_all(&self.db).await.map_err(backend)?;
        found.into_iter().map(rows::token).collect()
    }

    async fn revoke_token(
        &self,
        user: &DnsLabel,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<TokenRecord, Error> {
        let sql = format!(
            "UPDATE kws_accounts.tokens SET revoked_at = COALESCE(revoked_at, $3) \
             WHERE id = $1 AND user_name = $2 RETURNING {TOKEN_COLUMNS}"
        );
        let row: Option<TokenRow> = sqlx::query_as(&sql)
            .bind(id)
            .bind(user.as_str())
            .bind(at)
            .fetch_optional(&self.db)
            .await
            .map_err(backend)?;
        rows::token(row.ok_or(Error::NotFound { what: "token" })?)
    }

    async fn delete_user(&self, user: &DnsLabel) -> Result<(), Error> {
        let mut tx = self.db.begin().await.map_err(backend)?;
        // The password row first, as in `set_password`.
        for table in ["passwords", "sessions", "tokens"] {
            sqlx::query(&format!("DELETE FROM kws_accounts.{table} WHERE user_name = $1"))
                .bind(user.as_str())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn purge_expired(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        let n: i64 = sqlx::query_scalar(
            "WITH s AS (DELETE FROM kws_accounts.sessions WHERE expires_at < $1 RETURNING id), \
                  g AS (DELETE FROM kws_accounts.grants \
                        WHERE expires_at < $1 OR session_id IN (SELECT id FROM s) RETURNING 1), \
                  t AS (DELETE FROM kws_accounts.tokens \
                        WHERE expires_at < $1 OR revoked_at < $1 RETURNING 1) \
             SELECT (SELECT count(*) FROM s) + (SELECT count(*) FROM g) + (SELECT count(*) FROM t)",
        )
        .bind(before)
        .fetch_one(&self.db)
        .await
        .map_err(backend)?;
        Ok(u64::try_from(n).unwrap_or_default())
    }
}
