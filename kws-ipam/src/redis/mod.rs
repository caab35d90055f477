//! `RedisAllocator`: pools in Redis. Every mutating operation is an item of one Lua script call
//! (atomic, one round trip); concurrent calls on one instance share that call (group commit,
//! see `group_commit`), each with its own outcome. Lookups are one command. Host numbers travel
//! as 32 hex digits, so 128-bit arithmetic never meets Lua's doubles.

mod audit;
mod batch;
mod keys;

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, PoisonError, RwLock},
};

use kws_core::DnsLabel;
use redis::{Script, aio::MultiplexedConnection};

use crate::group_commit::{GroupCommit, Limits};
use crate::{Error, IpAllocator, IpamFuture, Lease, LeaseOwner, PoolSpec, Usage, pool::PoolLayout};
use batch::{Answer, Batches, Op};
pub(crate) use keys::PoolKeys;

/// Operations per script call, by default.
const BATCH_ITEMS: usize = 128;
/// Script calls in flight at once on the connection, by default.
const BATCHES_IN_FLIGHT: usize = 2;

/// An allocator whose pools live in Redis; any number of processes may share it.
///
/// Concurrent calls on one instance (and its clones) are coalesced: while
/// [`Self::with_group_commit`]'s `max_in_flight` script calls run, new operations queue, and
/// the next call runs up to `max_items` of them. A lone call runs at once.
#[derive(Debug, Clone)]
pub struct RedisAllocator {
    conn: MultiplexedConnection,
    prefix: String,
    create_pool: Arc<Script>,
    batches: GroupCommit<Batches>,
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

    /// Uses an open connection. Batches: at most 128 operations each, 2 in flight.
    pub fn with_connection(conn: MultiplexedConnection, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        let batches = Self::batches(&conn, &prefix, Limits::new(BATCH_ITEMS, BATCHES_IN_FLIGHT));
        Self {
            conn,
            prefix,
            create_pool: Arc::new(Script::new(include_str!("create_pool.lua"))),
            batches,
            layouts: Arc::default(),
        }
    }

    fn batches(conn: &MultiplexedConnection, prefix: &str, limits: Limits) -> GroupCommit<Batches> {
        let script = Script::new(include_str!("batch.lua"));
        let flusher = Batches { conn: conn.clone(), prefix: prefix.to_owned(), script };
        GroupCommit::new(flusher, limits)
    }

    /// The same allocator with other group-commit bounds: at most `max_items` operations per
    /// script call and `max_in_flight` calls at once (each at least 1). `(1, n)` turns
    /// coalescing off for up to `n` concurrent calls. Clones made before keep the old bounds.
    pub fn with_group_commit(mut self, max_items: usize, max_in_flight: usize) -> Self {
        let limits = Limits::new(max_items, max_in_flight);
        self.batches = Self::batches(&self.conn, &self.prefix, limits);
        self
    }

    /// The group-commit bounds: operations per script call, calls in flight.
    pub fn group_commit(&self) -> (usize, usize) {
        let l = self.batches.limits();
        (l.max_items, l.max_in_flight)
    }

    /// Group commit so far on this instance and its clones: script calls run, and the
    /// operations they held.
    pub fn group_commit_counts(&self) -> (u64, u64) {
        self.batches.counts()
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

    /// Runs `op` in the next script call.
    async fn run(&self, op: Op) -> Result<Answer, Error> {
        let lost = || Err(protocol("the batch of an operation was lost".into()));
        self.batches.submit(op).await.unwrap_or_else(lost)
    }
}

impl IpAllocator for RedisAllocator {
    fn create_pool<'a>(&'a self, spec: PoolSpec) -> IpamFuture<'a, ()> {
        IpamFuture::boxed(async move {
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
            args.extend(
                layout.segments().iter().map(|s| format!("{} {}", hex(s.first), hex(s.last))),
            );
            let mut inv = self.create_pool.prepare_invoke();
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
        })
    }

    fn allocate<'a>(&'a self, pool: &'a DnsLabel, owner: &'a LeaseOwner) -> IpamFuture<'a, Lease> {
        IpamFuture::boxed(async move {
            let layout = self.layout(pool).await?;
            let a = self.run(Op::Allocate { pool: pool.clone(), owner: owner.clone() }).await?;
            match a.kind.as_str() {
                "held" | "new" => Ok(Lease {
                    pool: pool.clone(),
                    addr: layout.addr_of(unhex(&a.value)?),
                    owner: owner.clone(),
                }),
                "exhausted" => Err(Error::Exhausted { pool: pool.clone() }),
                "nopool" => Err(Error::PoolNotFound(pool.clone())),
                _ => Err(protocol(format!("allocate answered {a:?}"))),
            }
        })
    }

    fn allocate_specific<'a>(
        &'a self,
        pool: &'a DnsLabel,
        addr: IpAddr,
        owner: &'a LeaseOwner,
    ) -> IpamFuture<'a, Lease> {
        IpamFuture::boxed(async move {
            let layout = self.layout(pool).await?;
            let host = layout.usable_host(addr)?;
            let a =
                self.run(Op::Specific { pool: pool.clone(), host, owner: owner.clone() }).await?;
            let ok = Lease { pool: pool.clone(), addr, owner: owner.clone() };
            match a.kind.as_str() {
                "new" => Ok(ok),
                "held" if a.value == owner.as_str() => Ok(ok),
                "held" => Err(Error::AlreadyAllocated {
                    pool: pool.clone(),
                    addr,
                    holder: LeaseOwner::trusted(a.value),
                }),
                "owner" => Err(Error::OwnerHasLease {
                    pool: pool.clone(),
                    owner: owner.clone(),
                    addr: layout.addr_of(unhex(&a.value)?),
                }),
                "nopool" => Err(Error::PoolNotFound(pool.clone())),
                _ => Err(protocol(format!("allocate_specific answered {a:?}"))),
            }
        })
    }

    fn release<'a>(&'a self, pool: &'a DnsLabel, addr: IpAddr) -> IpamFuture<'a, Lease> {
        IpamFuture::boxed(async move {
            let layout = self.layout(pool).await?;
            let not_allocated = || Error::NotAllocated { pool: pool.clone(), addr };
            let host = layout.leasable_host(addr)?.ok_or_else(not_allocated)?;
            let a = self.run(Op::Release { pool: pool.clone(), host }).await?;
            match a.kind.as_str() {
                "released" => {
                    Ok(Lease { pool: pool.clone(), addr, owner: LeaseOwner::trusted(a.value) })
                }
                "notallocated" => Err(not_allocated()),
                "nopool" => Err(Error::PoolNotFound(pool.clone())),
                _ => Err(protocol(format!("release answered {a:?}"))),
            }
        })
    }

    fn lookup<'a>(&'a self, pool: &'a DnsLabel, addr: IpAddr) -> IpamFuture<'a, Option<Lease>> {
        IpamFuture::boxed(async move {
            let layout = self.layout(pool).await?;
            let Some(host) = layout.leasable_host(addr)? else { return Ok(None) };
            let owner: Option<String> = redis::cmd("HGET")
                .arg(&self.keys(pool).leases)
                .arg(hex(host))
                .query_async(&mut self.conn.clone())
                .await
                .map_err(backend)?;
            Ok(owner.map(|o| Lease { pool: pool.clone(), addr, owner: LeaseOwner::trusted(o) }))
        })
    }

    fn lookup_owner<'a>(
        &'a self,
        pool: &'a DnsLabel,
        owner: &'a LeaseOwner,
    ) -> IpamFuture<'a, Option<Lease>> {
        IpamFuture::boxed(async move {
            let layout = self.layout(pool).await?;
            let host: Option<String> = redis::cmd("HGET")
                .arg(&self.keys(pool).owners)
                .arg(owner.as_str())
                .query_async(&mut self.conn.clone())
                .await
                .map_err(backend)?;
            host.map(|h| {
                Ok(Lease {
                    pool: pool.clone(),
                    addr: layout.addr_of(unhex(&h)?),
                    owner: owner.clone(),
                })
            })
            .transpose()
        })
    }

    fn usage<'a>(&'a self, pool: &'a DnsLabel) -> IpamFuture<'a, Usage> {
        IpamFuture::boxed(async move {
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
        })
    }
}
