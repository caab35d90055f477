//! The conformance suite on PostgreSQL (a fresh database per test), directly and through
//! `Box<dyn PeerStore>`; plus the migrations' idempotence and the database's own guards.

use kws_wg::{PeerStore, PostgresPeerStore, testkit};

#[tokio::test]
async fn postgres_store_passes_the_suite() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let store = PostgresPeerStore::connect(db.pool().await).await.expect("migrations");
    testkit::run_all(&store).await;
}

#[tokio::test]
async fn postgres_store_passes_the_suite_as_a_trait_object() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let store: Box<dyn PeerStore> =
        Box::new(PostgresPeerStore::connect(db.pool().await).await.expect("migrations"));
    testkit::run_all(store.as_ref()).await;
}

#[tokio::test]
async fn migrations_are_idempotent_and_two_stores_share_the_rows() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let a = PostgresPeerStore::connect(db.pool().await).await.expect("first migration");
    let b = PostgresPeerStore::connect(db.pool().await).await.expect("second migration");
    let peer = testkit::sample_peer("pg-share", "alice", "phone", 2);
    a.insert(&peer).await.expect("insert");
    assert_eq!(b.get(&peer.public_key).await.expect("get"), Some(peer.clone()));
    let mut clash = testkit::sample_peer("pg-share", "bob", "phone", 2);
    clash.ipv4 = peer.ipv4;
    assert!(b.insert(&clash).await.is_err(), "the database enforces address uniqueness");
}
