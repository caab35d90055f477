//! The design kws-ipam replaces, kept only to show its flaws side by side with the fix
//! (`examples/ipam_race.rs`). Do not allocate with it.
//!
//! As written: released addresses go on a Redis stack (`LPUSH`/`LPOP`); when the stack is
//! empty the next host number is the largest allocated one plus one, read with
//! `ORDER BY host DESC LIMIT 1`; no lock, no unique constraint; host numbers become addresses
//! only under 10.0.0.0.

use std::net::{IpAddr, Ipv4Addr};

use sqlx::PgPool;

use crate::{Error, postgres::backend, redis::backend as redis_backend};

/// The original allocator: a Redis stack, else `max + 1`.
#[derive(Debug, Clone)]
pub struct OriginalDesign {
    db: PgPool,
    redis: redis::aio::MultiplexedConnection,
    stack: String,
}

impl OriginalDesign {
    /// Connects and creates its table (`original_leases`) and stack key (`{prefix}original`).
    pub async fn connect(
        pg_url: &str,
        max_connections: u32,
        redis_url: &str,
        prefix: &str,
    ) -> Result<Self, Error> {
        let db = sqlx::postgres::PgPoolOptions::new()
            .max_connections(max_connections)
            .connect(pg_url)
            .await
            .map_err(backend)?;
        for sql in [
            "CREATE TABLE IF NOT EXISTS original_leases (host bigint NOT NULL, owner text NOT NULL)",
            "CREATE INDEX IF NOT EXISTS original_leases_host ON original_leases (host)",
        ] {
            sqlx::query(sql).execute(&db).await.map_err(backend)?;
        }
        let client = redis::Client::open(redis_url).map_err(redis_backend)?;
        let redis = client.get_multiplexed_async_connection().await.map_err(redis_backend)?;
        Ok(Self { db, redis, stack: format!("{prefix}original") })
    }

    /// Pop, else `max + 1`, then insert.
    pub async fn allocate(&self, owner: &str) -> Result<IpAddr, Error> {
        let popped: Option<i64> = redis::cmd("LPOP")
            .arg(&self.stack)
            .query_async(&mut self.redis.clone())
            .await
            .map_err(redis_backend)?;
        let host = match popped {
            Some(h) => h,
            None => {
                let max: Option<i64> = sqlx::query_scalar(
                    "SELECT host FROM original_leases ORDER BY host DESC LIMIT 1",
                )
                .fetch_optional(&self.db)
                .await
                .map_err(backend)?;
                max.unwrap_or(1) + 1
            }
        };
        sqlx::query("INSERT INTO original_leases (host, owner) VALUES ($1, $2)")
            .bind(host)
            .bind(owner)
            .execute(&self.db)
            .await
            .map_err(backend)?;
        Ok(address(host))
    }

    /// Delete, then push.
    pub async fn release(&self, addr: IpAddr) -> Result<(), Error> {
        let IpAddr::V4(a) = addr else {
            return Err(Error::InvalidArgument(format!("{addr}: IPv4 only")));
        };
        let host = i64::from(u32::from(a) - u32::from(Ipv4Addr::new(10, 0, 0, 0)));
        sqlx::query("DELETE FROM original_leases WHERE host = $1")
            .bind(host)
            .execute(&self.db)
            .await
            .map_err(backend)?;
        redis::cmd("LPUSH")
            .arg(&self.stack)
            .arg(host)
            .query_async::<i64>(&mut self.redis.clone())
            .await
            .map_err(redis_backend)?;
        Ok(())
    }

    /// Host numbers held by more than one row at the end: duplicates in the final state.
    pub async fn duplicate_rows(&self) -> Result<i64, Error> {
        sqlx::query_scalar(
            "SELECT coalesce(sum(n - 1), 0)::bigint FROM \
             (SELECT count(*) AS n FROM original_leases GROUP BY host HAVING count(*) > 1) d",
        )
        .fetch_one(&self.db)
        .await
        .map_err(backend)
    }
}

fn address(host: i64) -> IpAddr {
    let h = u32::try_from(host).unwrap_or(u32::MAX);
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)).wrapping_add(h)))
}
