//! The in-memory backend runs the conformance suite, directly and through `Box<dyn>`.

use kws_proxy::{MemoryProxy, ProxyWriter, RoutePolicy, testkit};

fn policy() -> RoutePolicy {
    RoutePolicy::new("example.test".parse().expect("domain"), ["127.0.0.0/8".parse().expect("net")])
}

#[tokio::test]
async fn conformance_direct() {
    testkit::all(&MemoryProxy::new(policy())).await;
}

#[tokio::test]
async fn conformance_boxed() {
    let boxed: Box<dyn ProxyWriter> = Box::new(MemoryProxy::new(policy()));
    testkit::all(boxed.as_ref()).await;
}
