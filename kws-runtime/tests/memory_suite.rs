//! The conformance checks that need no process behind an instance, on the in-memory backend,
//! directly and through `Arc<dyn Runtime>`.

use std::sync::Arc;

use kws_core::OwnerId;
use kws_ipam::MemoryAllocator;
use kws_runtime::{ImageRef, MemoryRuntime, Runtime, testkit};

fn runtime() -> (MemoryRuntime, testkit::Fixture) {
    let image = ImageRef::parse("kws-test/busybox:1").expect("image");
    let rt = MemoryRuntime::new(Arc::new(MemoryAllocator::new()), image.clone());
    (rt, testkit::Fixture { owner: OwnerId::parse("alice").expect("owner"), image })
}

macro_rules! both_ways {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            use super::*;

            #[tokio::test]
            async fn direct() {
                let (rt, fx) = runtime();
                testkit::$check(&rt, &fx).await;
            }

            #[tokio::test]
            async fn as_dyn() {
                let (rt, fx) = runtime();
                let rt: Arc<dyn Runtime> = Arc::new(rt);
                testkit::$check(rt.as_ref(), &fx).await;
            }
        }
    )*};
}

both_ways!(lifecycle, not_found, bad_specs, purge_and_networks, watch_reports_changes);
