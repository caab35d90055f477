//! The conformance suite on the in-memory peer store, directly and through `Box<dyn PeerStore>`.

use kws_wg::{MemoryPeerStore, PeerStore, testkit};

#[tokio::test]
async fn memory_store_passes_the_suite() {
    testkit::run_all(&MemoryPeerStore::new()).await;
}

#[tokio::test]
async fn memory_store_passes_the_suite_as_a_trait_object() {
    let store: Box<dyn PeerStore> = Box::new(MemoryPeerStore::new());
    testkit::run_all(store.as_ref()).await;
}
