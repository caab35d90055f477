//! allocate+release on `MemoryAllocator` (through the async trait, through the same
//! operation's synchronous entry points, and through the address-only ones) at /24, /16, /8,
//! IPv6 /64 and /48, empty and with 1,000,000 live leases (full but one for the /24 and /16),
//! beside two baselines at the same sizes and fill: a naive first-free scan over a set, and a
//! bitmap first-free scan (the approach of the common container IPAMs). Ends with the memory
//! per live lease.
//!
//! The trait path runs as an async caller runs it: each timed loop of `allocate(..).await`
//! then `release(..).await` (both `Lease` values built and dropped) is one task, polled to
//! completion by one `block_on`, so the figure is the trait's cost, not an executor's entry.
//!
//! `cargo bench --bench ipam --no-default-features --features ipam`
// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::{
    collections::HashSet,
    hint::black_box,
    time::{Duration, Instant},
};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kws::core::DnsLabel;
use kws::ipam::{IpAllocator, LeaseOwner, MemoryAllocator, PoolSpec};

const LOADED: u128 = 1_000_000;

/// (name, prefix, usable addresses)
const SIZES: [(&str, &str, u128); 5] = [
    ("v4-24", "10.0.0.0/24", 253),
    ("v4-16", "10.0.0.0/16", 65_533),
    ("v4-8", "10.0.0.0/8", 16_777_213),
    ("v6-64", "fd00::/64", u64::MAX as u128 - 1),
    ("v6-48", "fd01::/48", u128::MAX >> 48),
];

fn live(capacity: u128, loaded: bool) -> u128 {
    if loaded { LOADED.min(capacity - 1) } else { 0 }
}

/// Runs a future that never waits (MemoryAllocator's never do) to completion.
fn now<T>(f: impl std::future::Future<Output = T>) -> T {
    futures::executor::block_on(f)
}

/// `n` rounds of allocate then release through the trait object, in one task; the time taken.
fn trait_rounds(a: &dyn IpAllocator, pool: &DnsLabel, owner: &LeaseOwner, n: u64) -> Duration {
    now(async {
        let t = Instant::now();
        for _ in 0..n {
            let lease = a.allocate(pool, owner).await.expect("allocate");
            let released = a.release(pool, black_box(lease.addr)).await.expect("release");
            black_box((lease, released));
        }
        t.elapsed()
    })
}

fn memory(c: &mut Criterion) {
    let mut g = c.benchmark_group("ipam/memory");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for loaded in [false, true] {
        for (name, prefix, capacity) in SIZES {
            let a = MemoryAllocator::new();
            let pool = DnsLabel::parse("bench").expect("label");
            now(a.create_pool(PoolSpec::new(pool.clone(), prefix.parse().expect("prefix"))))
                .expect("pool");
            for i in 0..live(capacity, loaded) {
                let o = LeaseOwner::new(format!("live-{i}")).expect("owner");
                now(a.allocate(&pool, &o)).expect("fill");
            }
            let owner = LeaseOwner::new("bench-owner").expect("owner");
            let fill = if loaded { "loaded" } else { "empty" };
            let dyn_a: &dyn IpAllocator = &a;
            g.bench_function(BenchmarkId::new(format!("{fill}/trait"), name), |b| {
                b.iter_custom(|n| trait_rounds(dyn_a, &pool, &owner, n))
            });
            g.bench_function(BenchmarkId::new(format!("{fill}/sync"), name), |b| {
                b.iter(|| {
                    let lease = a.allocate_now(&pool, &owner).expect("allocate");
                    let released = a.release_now(&pool, black_box(lease.addr)).expect("release");
                    black_box((lease, released));
                })
            });
            g.bench_function(BenchmarkId::new(format!("{fill}/addr"), name), |b| {
                b.iter(|| {
                    let addr = a.allocate_addr(&pool, &owner).expect("allocate");
                    a.release_addr(&pool, black_box(addr)).expect("release");
                })
            });
            eprintln!(
                "best-of-batches {fill}/{name}: trait {:.1} ns, sync {:.1} ns, addr {:.1} ns",
                best_of_batches(|n| trait_rounds(dyn_a, &pool, &owner, n)),
                best_of_batches(|n| {
                    let t = Instant::now();
                    for _ in 0..n {
                        let lease = a.allocate_now(&pool, &owner).expect("allocate");
                        let released =
                            a.release_now(&pool, black_box(lease.addr)).expect("release");
                        black_box((lease, released));
                    }
                    t.elapsed()
                }),
                best_of_batches(|n| {
                    let t = Instant::now();
                    for _ in 0..n {
                        let addr = a.allocate_addr(&pool, &owner).expect("allocate");
                        a.release_addr(&pool, black_box(addr)).expect("release");
                    }
                    t.elapsed()
                })
            );
            if loaded && name == "v4-8" {
                let bytes = a.lease_index_bytes(&pool).expect("bytes");
                let leases = now(a.usage(&pool)).expect("usage").allocated;
                eprintln!(
                    "memory per live lease (v4-8, {leases} leases): {:.1} bytes beside the owner string",
                    bytes as f64 / leases as f64
                );
            }
        }
    }
    g.finish();
}

/// The fastest of 200 batches of 10,000 rounds, in ns per round: on a machine other jobs keep
/// busy, the batch that ran undisturbed tells the cost of the code itself. `rounds(n)` runs `n`
/// rounds and answers the time they took.
fn best_of_batches(mut rounds: impl FnMut(u64) -> Duration) -> f64 {
    (0..200).map(|_| rounds(10_000).as_nanos() as f64 / 10_000.0).fold(f64::INFINITY, f64::min)
}

/// The naive baseline: walk host numbers from the first until one is not in the set.
struct NaiveScan {
    used: HashSet<u128>,
    capacity: u128,
}

impl NaiveScan {
    fn allocate(&mut self) -> Option<u128> {
        let h = (0..self.capacity).find(|h| !self.used.contains(h))?;
        self.used.insert(h);
        Some(h)
    }
}

/// The bitmap baseline: one bit per address, scan words from the start for a zero bit.
struct BitmapScan {
    words: Vec<u64>,
}

impl BitmapScan {
    fn new(capacity: u128) -> Self {
        Self { words: vec![0; capacity.div_ceil(64) as usize] }
    }

    fn allocate(&mut self) -> Option<u128> {
        let (i, w) = self.words.iter_mut().enumerate().find(|(_, w)| **w != u64::MAX)?;
        let bit = w.trailing_ones();
        *w |= 1 << bit;
        Some(i as u128 * 64 + u128::from(bit))
    }

    fn release(&mut self, h: u128) {
        self.words[(h / 64) as usize] &= !(1 << (h % 64));
    }
}

/// Baselines over the same sizes; their state is capped at what fits in memory (a bitmap of a
/// /64 does not), which only flatters them: the scan length, not the map size, is the cost.
fn baselines(c: &mut Criterion) {
    let mut g = c.benchmark_group("ipam/baseline");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for loaded in [false, true] {
        for (name, _, capacity) in SIZES {
            let fill = live(capacity, loaded);
            let modelled = capacity.min(1 << 26);
            let mut naive = NaiveScan { used: (0..fill).collect(), capacity: modelled };
            let mut bitmap = BitmapScan::new(modelled);
            for _ in 0..fill {
                bitmap.allocate();
            }
            let tag = if loaded { "loaded" } else { "empty" };
            g.bench_function(BenchmarkId::new(format!("naive-{tag}"), name), |b| {
                b.iter(|| {
                    let h = naive.allocate().expect("free");
                    naive.used.remove(&black_box(h));
                })
            });
            g.bench_function(BenchmarkId::new(format!("bitmap-{tag}"), name), |b| {
                b.iter(|| {
                    let h = bitmap.allocate().expect("free");
                    bitmap.release(black_box(h));
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, memory, baselines);
criterion_main!(benches);
