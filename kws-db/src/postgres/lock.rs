//! The per-owner lock: a session-level advisory lock held on one pooled connection for the
//! whole of an operation, so calls for one owner are serialised across processes. If the
//! operation is abandoned (the future dropped, the process killed), the connection is closed
//! rather than returned to the pool, and the server frees the lock with the session.

use kws_core::OwnerId;
use sqlx::{PgConnection, PgPool, Postgres, pool::PoolConnection};

/// The first key of kws-db's advisory locks (the second is a hash of the owner): "kwsd".
const LOCK_CLASS: i32 = 0x6b77_7364;

/// An owner's lock and the connection that holds it; every step of the operation runs on it.
#[derive(Debug)]
pub(crate) struct OwnerLock {
    conn: Option<PoolConnection<Postgres>>,
}

impl OwnerLock {
    /// Waits for `owner`'s lock.
    pub(crate) async fn acquire(pool: &PgPool, owner: &OwnerId) -> Result<Self, sqlx::Error> {
        // The guard exists before the lock is asked for, so a cancelled wait closes the
        // connection too (the server may grant the lock after the client gave up).
        let mut lock = Self { conn: Some(pool.acquire().await?) };
        sqlx::query("SELECT pg_advisory_lock($1, hashtext($2))")
            .bind(LOCK_CLASS)
            .bind(owner.as_str())
            .execute(lock.conn())
            .await?;
        Ok(lock)
    }

    /// The connection holding the lock.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        match self.conn.as_mut() {
            Some(conn) => conn,
            // `conn` is only taken by `release` and `drop`, which consume the lock.
            None => unreachable!("OwnerLock used after release"),
        }
    }

    /// Frees the lock and returns the connection to the pool (or closes it, when unlocking
    /// fails, so the lock cannot outlive the operation).
    pub(crate) async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock_all()").execute(&mut *conn).await;
            if unlocked.is_err() {
                drop(conn.detach());
            }
        }
    }
}

impl Drop for OwnerLock {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Detached, the connection is closed on drop: the server ends the session and
            // frees its advisory locks.
            drop(conn.detach());
        }
    }
}
