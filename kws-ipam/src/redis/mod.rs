//! `RedisAllocator`: pools in Redis. Every mutating operation is one Lua script (atomic, one
//! round trip); lookups are one command. Host numbers travel as 32 hex digits, so 128-bit
//! arithmetic never meets Lua's doubles.

mod audit;
mod keys;

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, PoisonError, RwLock},
};

use kws_core::DnsLabel;
use redis::{Script, aio::MultiplexedConnection};

use crate::{Error, IpAllocator, Lease, LeaseOwner, PoolSpec, Usage, pool::PoolLayout};
pub(crate) use keys::PoolKeys;

fn script(body: &str) -> Script {
    Script::new(&format!("{}\n{body}", include_str!("common.lua")))
}

#[derive(Debug)]
struct Scripts {
    create_pool: Script,
    allocate: Script,
    allocate_specific: Script,
    release: Script,
}

/// An allocator whose pools live in Redis; any number of processes may share it.
#[derive(Debug, Clone)]
pub struct RedisAllocator {
    conn: MultiplexedConnection,
    prefix: String,
    scripts: Arc<Scripts>,
    layouts: Arc<RwLock<HashMap<DnsLabel, Arc<PoolLayout>>>>,
}

pub(crate) fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Backend { backend: "redis", source: Box::new(e) }
}

fn protocol(what: String) -> Error {
    Error::Backend { backend: "redis", source: what.into() }
}

/// A host number as the scripts write it.
pub(crate) fn hex(host: u128) -> String {
    format!("{host:032x}")
}

fn unhex(s: &str) -> Result<u128, Error> {
    u128::from_str_radix(s, 16).map_err(|e| protocol(format!("bad host number {s:?}: {e}")))
}

impl RedisAllocator {
    /// Uses `client`, with every key under `prefix` (e.g. `"kws:"`; tests pass their own).
    pub async fn new(client: &redis::Client, prefix: impl Into<String>) -> Result<Self, Error> {
        let conn = client.get_multiplexed_async_connection().await.map_err(backend)?;
        Ok(Self::with_connection(conn, prefix))
    }

    /// Connects to `url` (one multiplexed connection), then as [`Self::new`].
    pub async fn connect(url: &str, prefix: impl Into<String>) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(backend)?;
        Self::new(&client, prefix).await
    }

    /// Uses an open connection.
    pub fn with_connection(conn: MultiplexedConnection, prefix: impl Into<String>) -> Self {
        let scripts = Scripts {
            create_pool: script(include_str!("create_pool.lua")),
            allocate: script(include_str!("allocate.lua")),
            allocate_specific: script(include_str!("allocate_specific.lua")),
            release: script(include_str!("release.lua")),
        };
        Self { conn, prefix: prefix.into(), scripts: Arc::new(scripts), layouts: Arc::default() }
    }

    fn keys(&self, pool: &DnsLabel) -> PoolKeys {
        PoolKeys::new(&self.prefix, pool)
    }

    async fn layout(&self, pool: &DnsLabel) -> Result<Arc<PoolLayout>, Error> {
        if let Some(l) = self.layouts.read().unwrap_or_else(PoisonError::into_inner).get(pool) {
            return Ok(l.clone());
        }
        let json: Option<String> = redis::cmd("HGET")
            .arg(&self.keys(pool).meta)
            .arg("spec")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        let Some(json) = json else { return Err(Error::PoolNotFound(pool.clone())) };
        let spec: PoolSpec = serde_json::from_str(&json)
            .map_err(|e| protocol(format!("pool {pool}: unreadable spec: {e}")))?;
        let layout = Arc::new(PoolLayout::new(&spec)?);
        let mut cache = self.layouts.write().unwrap_or_else(PoisonError::into_inner);
        cache.insert(pool.clone(), layout.clone());
        Ok(layout)
    }

    async fn run(
        &self,
        script: &Script,
        keys: &PoolKeys,
        args: &[&str],
    ) -> Result<Vec<String>, Error> {
        let mut inv = script.prepare_invoke();
        for k in keys.all() {
            inv.key(k);
        }
        for a in args {
            inv.arg(*a);
        }
        inv.invoke_async(&mut self.conn.clone()).await.map_err(backend)
    }
}

#[async_trait::async_trait]
impl IpAllocator for RedisAllocator {
    async fn create_pool(&self, spec: PoolSpec) -> Result<(), Error> {
        let layout = PoolLayout::new(&spec)?;
        let k = self.keys(&spec.name);
        let json = serde_json::to_string(&spec).map_err(|e| protocol(e.to_string()))?;
        let net = spec.prefix;
        let fam = if net.network().is_ipv4() { "4" } else { "6" };
        let range = format!(
            "{fam}|{}|{}",
            hex(crate::pool::to_u128(net.network())),
            hex(crate::pool::to_u128(net.broadcast()))
        );
        let mut args: Vec<String> = vec![
            spec.name.to_string(),
            range,
            spec.quarantine.as_millis().to_string(),
            layout.capacity().to_string(),
            json,
        ];
        args.extend(layout.segments().iter().map(|s| format!("{} {}", hex(s.first), hex(s.last))));
        let mut inv = self.scripts.create_pool.prepare_invoke();
        for key in k.all() {
            inv.key(key);
        }
        inv.key(keys::registry(&self.prefix));
        for a in &args {
            inv.arg(a);
        }
        let r: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await.map_err(backend)?;
        match r.first().map(String::as_str) {
            Some("ok") => Ok(()),
            Some("exists") => Err(Error::PoolExists(spec.name)),
            Some("overlap") => Err(Error::InvalidPool(format!(
                "pool {} ({}) overlaps pool {}",
                spec.name,
                spec.prefix,
                r.get(1).map_or("?", String::as_str)
            ))),
            _ => Err(protocol(format!("create_pool answered {r:?}"))),
        }
    }

    async fn allocate(&self, pool: &DnsLabel, owner: &LeaseOwner) -> Result<Lease, Error> {
        let layout = self.layout(pool).await?;
        let r = self.run(&self.scripts.allocate, &self.keys(pool), &[owner.as_str()]).await?;
        match (r.first().map(String::as_str), r.get(1)) {
            (Some("held" | "new"), Some(h)) => Ok(Lease {
                pool: pool.clone(),
                addr: layout.addr_of(unhex(h)?),
                owner: owner.clone(),
            }),
            (Some("exhausted"), _) => Err(Error::Exhausted { pool: pool.clone() }),
            (Some("nopool"), _) => Err(Error::PoolNotFound(pool.clone())),
            _ => Err(protocol(format!("allocate answered {r:?}"))),
        }
    }

    async fn allocate_specific(
        &self,
        pool: &DnsLabel,
        addr: IpAddr,
        owner: &LeaseOwner,
    ) -> Result<Lease, Error> {
        let layout = self.layout(pool).await?;
        let host = layout.usable_host(addr)?;
        let args = [hex(host), owner.as_str().to_owned()];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = self.run(&self.scripts.allocate_specific, &self.keys(pool), &args).await?;
        let ok = Lease { pool: pool.clone(), addr, owner: owner.clone() };
        match (r.first().map(String::as_str), r.get(1)) {
            (Some("new"), _) => Ok(ok),
            (Some("held"), Some(holder)) if holder == owner.as_str() => Ok(ok),
            (Some("held"), Some(holder)) => Err(Error::AlreadyAllocated {
                pool: pool.clone(),
                addr,
                holder: LeaseOwner::trusted(holder.clone()),
            }),
            (Some("owner"), Some(h)) => Err(Error::OwnerHasLease {
                pool: pool.clone(),
                owner: owner.clone(),
                addr: layout.addr_of(unhex(h)?),
            }),
            (Some("nopool"), _) => Err(Error::PoolNotFound(pool.clone())),
            _ => Err(protocol(format!("allocate_specific answered {r:?}"))),
        }
    }

    async fn release(&self, pool: &DnsLabel, addr: IpAddr) -> Result<Lease, Error> {
        let layout = self.layout(pool).await?;
        let not_allocated = || Error::NotAllocated { pool: pool.clone(), addr };
        let host = layout.leasable_host(addr)?.ok_or_else(not_allocated)?;
        let r = self.run(&self.scripts.release, &self.keys(pool), &[&hex(host)]).await?;
        match (r.first().map(String::as_str), r.get(1)) {
            (Some("released"), Some(o)) => {
                Ok(Lease { pool: pool.clone(), addr, owner: LeaseOwner::trusted(o.clone()) })
            }
            (Some("notallocated"), _) => Err(Error::NotAllocated { pool: pool.clone(), addr }),
            (Some("nopool"), _) => Err(Error::PoolNotFound(pool.clone())),
            _ => Err(protocol(format!("release answered {r:?}"))),
        }
    }

    async fn lookup(&self, pool: &DnsLabel, addr: IpAddr) -> Result<Option<Lease>, Error> {
        let layout = self.layout(pool).await?;
        let Some(host) = layout.leasable_host(addr)? else { return Ok(None) };
        let owner: Option<String> = redis::cmd("HGET")
            .arg(&self.keys(pool).leases)
            .arg(hex(host))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(owner.map(|o| Lease { pool: pool.clone(), addr, owner: LeaseOwner::trusted(o) }))
    }

    async fn lookup_owner(
        &self,
        pool: &DnsLabel,
        owner: &LeaseOwner,
    ) -> Result<Option<Lease>, Error> {
        let layout = self.layout(pool).await?;
        let host: Option<String> = redis::cmd("HGET")
            .arg(&self.keys(pool).owners)
            .arg(owner.as_str())
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        host.map(|h| {
            Ok(Lease { pool: pool.clone(), addr: layout.addr_of(unhex(&h)?), owner: owner.clone() })
        })
        .transpose()
    }

    async fn usage(&self, pool: &DnsLabel) -> Result<Usage, Error> {
        let capacity = self.layout(pool).await?.capacity();
        let allocated: Option<u64> = redis::cmd("HGET")
            .arg(&self.keys(pool).meta)
            .arg("allocated")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        let Some(allocated) = allocated else { return Err(Error::PoolNotFound(pool.clone())) };
        let allocated = u128::from(allocated);
        Ok(Usage { capacity, allocated, free: capacity.saturating_sub(allocated) })
    }
}
