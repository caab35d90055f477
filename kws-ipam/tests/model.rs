//! A proptest state machine: random allocate / allocate_specific / release on small IPv4 and
//! IPv6 pools (so exhaustion happens), each step checked against a plain model of the
//! contract (FIFO reuse before fresh addresses, the cursor in address order, one lease per
//! owner). Full run on memory, fewer cases on Redis, PostgreSQL and PostgreSQL+Redis.

use std::{
    collections::{BTreeMap, VecDeque},
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use kws_ipam::{Error, IpAllocator, MemoryAllocator, testkit};
use proptest::{prelude::*, test_runner::TestRunner};

#[derive(Debug, Clone)]
enum Op {
    Allocate(u8),
    Specific(u8, u8),
    Release(u8),
}

fn ops() -> impl Strategy<Value = (bool, Vec<Op>)> {
    let op = prop_oneof![
        4 => (0u8..20).prop_map(Op::Allocate),
        2 => ((0u8..18), (0u8..20)).prop_map(|(a, o)| Op::Specific(a, o)),
        3 => (0u8..18).prop_map(Op::Release),
    ];
    (any::<bool>(), proptest::collection::vec(op, 1..70))
}

/// Hosts 6 and 7 are reserved in every pool, so the usable hosts form two segments.
const RESERVED: std::ops::RangeInclusive<u8> = 6..=7;

/// The contract, written as plainly as possible. Hosts are indexes 0..16 of the /28 or /124;
/// 0 is the network, 1 the gateway, 15 the IPv4 broadcast, `RESERVED` configured.
struct Model {
    usable: Vec<u8>,
    leases: BTreeMap<u8, u8>,
    queue: VecDeque<u8>,
    cursor: usize,
}

impl Model {
    fn new(v6: bool) -> Self {
        let top = if v6 { 15 } else { 14 };
        Self {
            usable: (2..=top).filter(|h| !RESERVED.contains(h)).collect(),
            leases: BTreeMap::new(),
            queue: VecDeque::new(),
            cursor: 0,
        }
    }

    fn held_by(&self, o: u8) -> Option<u8> {
        self.leases.iter().find(|(_, w)| **w == o).map(|(h, _)| *h)
    }

    fn allocate(&mut self, o: u8) -> Option<u8> {
        if let Some(h) = self.held_by(o) {
            return Some(h);
        }
        let h = match self.queue.pop_front() {
            Some(h) => h,
            None => loop {
                let h = *self.usable.get(self.cursor)?;
                self.cursor += 1;
                if !self.leases.contains_key(&h) && !self.queue.contains(&h) {
                    break h;
                }
            },
        };
        self.leases.insert(h, o);
        Some(h)
    }
}

fn addr(prefix: &ipnet::IpNet, host: u8) -> IpAddr {
    match prefix {
        ipnet::IpNet::V4(n) => IpAddr::V4((u32::from(n.network()) + u32::from(host)).into()),
        ipnet::IpNet::V6(n) => IpAddr::V6((u128::from(n.network()) + u128::from(host)).into()),
    }
}

fn host(prefix: &ipnet::IpNet, a: IpAddr) -> u8 {
    let n = match (prefix, a) {
        (ipnet::IpNet::V4(n), IpAddr::V4(a)) => u128::from(u32::from(a) - u32::from(n.network())),
        (ipnet::IpNet::V6(n), IpAddr::V6(a)) => u128::from(a) - u128::from(n.network()),
        _ => panic!("{a} is of the other family than {prefix}"),
    };
    u8::try_from(n).unwrap_or_else(|_| panic!("{a} outside {prefix}"))
}

fn who(o: u8) -> kws_ipam::LeaseOwner {
    testkit::owner(&format!("owner-{o}"))
}

async fn check(alloc: &dyn IpAllocator, case: usize, v6: bool, ops: &[Op]) {
    let prefix = if v6 {
        format!("fd00:1:{case:x}::/124")
    } else {
        format!("10.{}.{}.0/28", 100 + case / 256, case % 256)
    };
    let mut spec = testkit::spec(&format!("m{case}"), &prefix);
    let prefix: ipnet::IpNet = prefix.parse().expect("prefix");
    spec.reserved = vec![addr(&prefix, *RESERVED.start())..=addr(&prefix, *RESERVED.end())];
    let pool = testkit::create(alloc, spec).await;
    let mut m = Model::new(v6);
    for (step, op) in ops.iter().enumerate() {
        let at = format!("case {case} step {step} {op:?}");
        match *op {
            Op::Allocate(o) => {
                let got = alloc.allocate(&pool, &who(o)).await;
                match (m.allocate(o), got) {
                    (Some(h), Ok(l)) => assert_eq!(host(&prefix, l.addr), h, "{at}"),
                    (None, Err(Error::Exhausted { .. })) => {}
                    (want, got) => panic!("{at}: model {want:?}, backend {got:?}"),
                }
            }
            Op::Specific(h, o) => {
                let got = alloc.allocate_specific(&pool, addr(&prefix, h), &who(o)).await;
                let reserved = h < 2 || (!v6 && h == 15) || RESERVED.contains(&h);
                match (reserved, m.leases.get(&h).copied(), m.held_by(o), got) {
                    (_, _, _, Err(Error::OutOfPool { .. })) if h >= 16 => {}
                    (true, _, _, Err(Error::Reserved { .. })) => {}
                    (false, Some(w), _, Ok(_)) if w == o => {}
                    (false, Some(w), _, Err(Error::AlreadyAllocated { holder, .. })) => {
                        assert_eq!(holder, who(w), "{at}")
                    }
                    (false, None, Some(other), Err(Error::OwnerHasLease { addr: a, .. })) => {
                        assert_eq!(host(&prefix, a), other, "{at}")
                    }
                    (false, None, None, Ok(l)) => {
                        assert_eq!(host(&prefix, l.addr), h, "{at}");
                        m.queue.retain(|q| *q != h);
                        m.leases.insert(h, o);
                    }
                    (r, w, held, got) => panic!(
                        "{at}: model reserved={r} holder={w:?} owner holds {held:?}, backend {got:?}"
                    ),
                }
            }
            Op::Release(h) => {
                let got = alloc.release(&pool, addr(&prefix, h)).await;
                match (m.leases.remove(&h), got) {
                    (None, Err(Error::OutOfPool { .. })) if h >= 16 => {}
                    (Some(o), Ok(l)) => {
                        assert_eq!(l.owner, who(o), "{at}");
                        m.queue.push_back(h);
                    }
                    (None, Err(Error::NotAllocated { .. })) => {}
                    (want, got) => panic!("{at}: model holder {want:?}, backend {got:?}"),
                }
            }
        }
    }
    let usage = alloc.usage(&pool).await.expect("usage");
    assert_eq!(usage.allocated, m.leases.len() as u128, "case {case}: allocated");
    assert_eq!(usage.capacity, m.usable.len() as u128, "case {case}: capacity");
    for h in 0..16 {
        let l = alloc.lookup(&pool, addr(&prefix, h)).await.expect("lookup");
        let want = m.leases.get(&h).map(|o| who(*o));
        assert_eq!(l.map(|l| l.owner), want, "case {case}: lookup of host {h}");
    }
}

/// Runs `cases` random programs on `rt`, each on a fresh pool (its own name and prefix) of
/// `alloc`.
fn run_model(cases: u32, rt: &tokio::runtime::Runtime, alloc: Arc<dyn IpAllocator>) {
    let counter = AtomicUsize::new(0);
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&ops(), |(v6, ops)| {
        let case = counter.fetch_add(1, Ordering::Relaxed);
        rt.block_on(check(&*alloc, case, v6, &ops));
        Ok(())
    });
    if let Err(e) = result {
        panic!("model check failed: {e}");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("runtime")
}

#[test]
fn memory_matches_the_model() {
    run_model(512, &runtime(), Arc::new(MemoryAllocator::new()));
}

#[cfg(feature = "redis")]
#[test]
fn redis_matches_the_model() {
    let rt = runtime();
    let Some(r) = rt.block_on(kws_testenv::redis()) else { return };
    let a = rt.block_on(kws_ipam::RedisAllocator::new(&r.client(), r.prefix())).expect("connect");
    run_model(48, &rt, Arc::new(a));
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_matches_the_model() {
    let rt = runtime();
    let Some(db) = rt.block_on(kws_testenv::postgres()) else { return };
    let a = rt.block_on(async { kws_ipam::PostgresAllocator::new(db.pool_with(2).await).await });
    run_model(24, &rt, Arc::new(a.expect("migrations")));
}

#[cfg(all(feature = "postgres", feature = "redis"))]
#[test]
fn pg_redis_matches_the_model() {
    let rt = runtime();
    let Some(db) = rt.block_on(kws_testenv::postgres()) else { return };
    let Some(r) = rt.block_on(kws_testenv::redis()) else { return };
    let a = rt.block_on(async {
        kws_ipam::PgRedisAllocator::new(db.pool_with(2).await, &r.client(), r.prefix()).await
    });
    run_model(24, &rt, Arc::new(a.expect("connect")));
}
