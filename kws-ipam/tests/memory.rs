//! The conformance suite and the flaw tests on `MemoryAllocator`.

use kws_ipam::{IpAllocator, MemoryAllocator, testkit};

#[tokio::test]
async fn conformance_direct() {
    testkit::run_all(&MemoryAllocator::new()).await;
}

#[tokio::test]
async fn conformance_boxed() {
    let boxed: Box<dyn IpAllocator> = Box::new(MemoryAllocator::new());
    testkit::run_all(&*boxed).await;
}

#[tokio::test]
async fn every_address_is_leased_queued_or_never_handed_out() {
    use testkit::{create, ip, must_allocate, must_release, owner, spec};
    let a = MemoryAllocator::new();
    let pool = create(&a, spec("acct", "10.7.0.0/26")).await;
    a.allocate_specific(&pool, ip("10.7.0.60"), &owner("static")).await.expect("specific");
    let mut held = Vec::new();
    for i in 0..30 {
        held.push(must_allocate(&a, &pool, &format!("o{i}")).await);
    }
    for addr in held.iter().step_by(3) {
        must_release(&a, &pool, *addr).await;
    }
    must_release(&a, &pool, ip("10.7.0.60")).await;
    let usage = a.usage(&pool).await.expect("usage");
    let queued = a.free_queue(&pool).expect("queue");
    let never = a.never_handed_out(&pool).expect("never");
    assert_eq!(queued.len(), 11);
    assert_eq!(usage.allocated + queued.len() as u128 + never, usage.capacity);
    assert_eq!(a.leases(&pool).expect("leases").len() as u128, usage.allocated);
}

fn shared(n: usize) -> Vec<std::sync::Arc<dyn IpAllocator>> {
    let a: std::sync::Arc<dyn IpAllocator> = std::sync::Arc::new(MemoryAllocator::new());
    vec![a; n]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flaw1_concurrent_allocators_never_share_an_address() {
    testkit::concurrent_allocators_never_share(&shared(4), 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flaw3_release_racing_allocation_never_requeues_a_leased_address() {
    testkit::release_racing_allocation(&shared(3), 300).await;
}

#[tokio::test]
async fn address_only_entry_points_are_the_same_operation() {
    use testkit::{create, ip, owner, spec};
    let a = MemoryAllocator::new();
    let pool = create(&a, spec("addr-only", "10.8.0.0/30")).await;
    let addr = a.allocate_addr(&pool, &owner("x")).expect("allocate");
    assert_eq!(addr, ip("10.8.0.2"));
    assert_eq!(a.allocate_addr(&pool, &owner("x")).expect("idempotent"), addr);
    let held = a.lookup(&pool, addr).await.expect("lookup").map(|l| l.owner);
    assert_eq!(held, Some(owner("x")));
    a.release_addr(&pool, addr).expect("release");
    assert!(matches!(a.release_addr(&pool, addr), Err(kws_ipam::Error::NotAllocated { .. })));
    assert!(matches!(
        a.allocate_addr(&pool, &owner("y")).map(|_| a.allocate_addr(&pool, &owner("z"))),
        Ok(Err(kws_ipam::Error::Exhausted { .. }))
    ));
}
