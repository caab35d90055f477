//! The PostgreSQL peer store (feature `postgres`): one row per peer, uniqueness by constraints.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kws_core::{DnsLabel, IfName, OwnerId};
use sqlx::{
    PgPool, Postgres, Row,
    postgres::{PgArguments, PgRow},
    query::Query,
};

use crate::{Error, Peer, PeerStore, PresharedKey, PublicKey};

const BACKEND: &str = "postgres";
const COLUMNS: &str = "public_key, interface, owner, name, host(ipv4) AS ipv4, host(ipv6) AS ipv6, \
     preshared_key, keepalive, created_at, expires_at, enabled";

/// Peers in a PostgreSQL table (`kws_wg_peers`), created by the crate's migrations.
#[derive(Debug, Clone)]
pub struct PostgresPeerStore {
    pool: PgPool,
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Store { backend: BACKEND, source: Box::new(e) }
}

impl PostgresPeerStore {
    /// Runs the crate's migrations on `pool` (idempotent; safe beside other crates' migrations
    /// in the same database) and returns the store.
    pub async fn connect(pool: PgPool) -> Result<Self, Error> {
        let mut migrator = sqlx::migrate!("./migrations");
        // Other kws crates keep their own migrations in the same history table.
        migrator.set_ignore_missing(true);
        migrator.run(&pool).await.map_err(backend)?;
        Ok(Self { pool })
    }

    /// Runs a query that returns at most one peer row.
    async fn fetch_peer(
        &self,
        query: Query<'_, Postgres, PgArguments>,
    ) -> Result<Option<Peer>, Error> {
        let row = query.fetch_optional(&self.pool).await.map_err(backend)?;
        row.as_ref().map(from_row).transpose()
    }

    fn conflict(&self, peer: &Peer, e: sqlx::Error) -> Error {
        let constraint = match &e {
            sqlx::Error::Database(db) => db.constraint().map(str::to_owned),
            _ => None,
        };
        match constraint.as_deref() {
            Some("kws_wg_peers_pkey") => Error::DuplicatePublicKey(peer.public_key),
            Some("kws_wg_peers_ipv4_key") => Error::DuplicateAddress {
                interface: peer.interface.clone(),
                addr: IpAddr::V4(peer.ipv4),
            },
            Some("kws_wg_peers_ipv6_key") => Error::DuplicateAddress {
                interface: peer.interface.clone(),
                addr: peer.ipv6.map_or(IpAddr::V4(peer.ipv4), IpAddr::V6),
            },
            Some("kws_wg_peers_name_key") => {
                Error::DuplicateName { owner: peer.owner.clone(), name: peer.name.clone() }
            }
            _ => backend(e),
        }
    }
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::Store {
        backend: BACKEND,
        source: format!("stored {what} is not valid: {detail}").into(),
    }
}

fn from_row(row: &PgRow) -> Result<Peer, Error> {
    let text = |col: &str| row.try_get::<String, _>(col).map_err(backend);
    let opt_text = |col: &str| row.try_get::<Option<String>, _>(col).map_err(backend);
    let public_key =
        PublicKey::from_base64(&text("public_key")?).map_err(|e| corrupt("public key", e))?;
    let ipv4: Ipv4Addr = text("ipv4")?.parse().map_err(|e| corrupt("ipv4", e))?;
    let ipv6: Option<Ipv6Addr> =
        opt_text("ipv6")?.map(|s| s.parse().map_err(|e| corrupt("ipv6", e))).transpose()?;
    let preshared_key = opt_text("preshared_key")?
        .map(|s| PresharedKey::from_base64(&s).map_err(|e| corrupt("preshared key", e)))
        .transpose()?;
    let keepalive = row
        .try_get::<Option<i32>, _>("keepalive")
        .map_err(backend)?
        .map(|k| u16::try_from(k).map_err(|e| corrupt("keepalive", e)))
        .transpose()?;
    Ok(Peer {
        public_key,
        interface: IfName::parse(&text("interface")?)?,
        owner: OwnerId::parse(&text("owner")?)?,
        name: DnsLabel::parse(&text("name")?)?,
        ipv4,
        ipv6,
        preshared_key,
        keepalive,
        created_at: row.try_get("created_at").map_err(backend)?,
        expires_at: row.try_get("expires_at").map_err(backend)?,
        enabled: row.try_get("enabled").map_err(backend)?,
    })
}

#[async_trait::async_trait]
impl PeerStore for PostgresPeerStore {
    async fn insert(&self, peer: &Peer) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO kws_wg_peers (public_key, interface, owner, name, ipv4, ipv6, \
             preshared_key, keepalive, created_at, expires_at, enabled) \
             VALUES ($1, $2, $3, $4, $5::inet, $6::inet, $7, $8, $9, $10, $11)",
        )
        .bind(peer.public_key.to_base64())
        .bind(peer.interface.as_str())
        .bind(peer.owner.as_str())
        .bind(peer.name.as_str())
        .bind(peer.ipv4.to_string())
        .bind(peer.ipv6.map(|a| a.to_string()))
        .bind(peer.preshared_key.as_ref().map(PresharedKey::to_base64))
        .bind(peer.keepalive.map(i32::from))
        .bind(peer.created_at)
        .bind(peer.expires_at)
        .bind(peer.enabled)
        .execute(&self.pool)
        .await
        .map_err(|e| self.conflict(peer, e))?;
        Ok(())
    }

    async fn get(&self, key: &PublicKey) -> Result<Option<Peer>, Error> {
        let sql = format!("SELECT {COLUMNS} FROM kws_wg_peers WHERE public_key = $1");
        self.fetch_peer(sqlx::query(&sql).bind(key.to_base64())).await
    }

    async fn find_by_name(&self, owner: &OwnerId, name: &DnsLabel) -> Result<Option<Peer>, Error> {
        let sql = format!("SELECT {COLUMNS} FROM kws_wg_peers WHERE owner = $1 AND name = $2");
        self.fetch_peer(sqlx::query(&sql).bind(owner.as_str()).bind(name.as_str())).await
    }

    async fn list(&self, interface: &IfName) -> Result<Vec<Peer>, Error> {
        let sql = format!("SELECT {COLUMNS} FROM kws_wg_peers WHERE interface = $1");
        let rows = sqlx::query(&sql)
            .bind(interface.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let mut peers = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        // Base64 order is not byte order; the contract promises public-key (byte) order.
        peers.sort_by_key(|p| p.public_key);
        Ok(peers)
    }

    async fn remove(&self, key: &PublicKey) -> Result<Peer, Error> {
        let sql = format!("DELETE FROM kws_wg_peers WHERE public_key = $1 RETURNING {COLUMNS}");
        let peer = self.fetch_peer(sqlx::query(&sql).bind(key.to_base64())).await?;
        peer.ok_or(Error::PeerNotFound(*key))
    }

    async fn set_enabled(&self, key: &PublicKey, enabled: bool) -> Result<Peer, Error> {
        let sql = format!(
            "UPDATE kws_wg_peers SET enabled = $2 WHERE public_key = $1 RETURNING {COLUMNS}"
        );
        let peer = self.fetch_peer(sqlx::query(&sql).bind(key.to_base64()).bind(enabled)).await?;
        peer.ok_or(Error::PeerNotFound(*key))
    }
}
