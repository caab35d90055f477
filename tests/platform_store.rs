//! The Platform store's conformance suite on both backends, directly and through
//! `Arc<dyn PlatformStore>`; two PostgreSQL stores on one database racing as two processes;
//! the migrations beside the other crates'; and transactions killed in their middle.
//!
//! PostgreSQL tests need `KWS_TEST_POSTGRES_URL` (a fresh database per test); they skip loudly
//! without it, and fail under `KWS_TEST_REQUIRE=1`.

#[path = "platform_store/interrupted.rs"]
mod interrupted;

use std::sync::Arc;

use kws::platform::store::{MemoryStore, PlatformStore, PostgresStore, testkit};
use kws_testenv::TestDb;

/// A store on `db`, with a pool of its own (another pool is another process's connections).
async fn postgres_store(db: &TestDb) -> PostgresStore {
    PostgresStore::connect(db.pool_with(16).await).await.expect("connect and migrate")
}

#[tokio::test]
async fn memory_store_passes_the_suite() {
    testkit::run_all(&MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_passes_the_suite_as_a_trait_object() {
    let store: Arc<dyn PlatformStore> = Arc::new(MemoryStore::new());
    testkit::run_all(store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_the_suite() {
    let Some(db) = kws_testenv::postgres().await else { return };
    testkit::run_all(&postgres_store(&db).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_the_suite_as_a_trait_object() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let store: Arc<dyn PlatformStore> = Arc::new(postgres_store(&db).await);
    testkit::run_all(store.as_ref()).await;
}

/// Two stores with their own pools on one database stand for two processes: of their
/// concurrent creates of one name one wins, quotas hold across them, one key makes one
/// operation, and each expired operation goes to one of their claimers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_database_race_as_two_processes() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let (a, b) = tokio::join!(postgres_store(&db), postgres_store(&db));
    testkit::run_races(&[&a, &b]).await;
    // And a trait object beside a concrete store, as a caller of the Platform holds them.
    let c: Arc<dyn PlatformStore> = Arc::new(postgres_store(&db).await);
    testkit::run_races(&[c.as_ref(), &a]).await;
}

/// The store's migrations run again (and from several processes at once) without change, and
/// live beside kws-ipam's and kws-wg's in one database whichever runs first: the store keeps
/// its history in its own schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent_and_live_beside_the_other_crates() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let pool = db.pool_with(8).await;
    kws::wg::PostgresPeerStore::connect(pool.clone()).await.expect("kws-wg migrations first");
    let (a, b) = tokio::join!(
        PostgresStore::connect(pool.clone()),
        PostgresStore::connect(db.pool_with(2).await)
    );
    a.expect("the store's migrations beside kws-wg's");
    b.expect("the store's migrations from a second process at once");
    kws::ipam::PostgresAllocator::new(pool.clone()).await.expect("kws-ipam migrations after");
    kws::wg::PostgresPeerStore::connect(pool.clone()).await.expect("kws-wg migrations again");
    let store = PostgresStore::connect(pool.clone()).await.expect("the store's migrations again");
    testkit::records_round_trip(&store).await;

    let ours: i64 = sqlx::query_scalar("SELECT count(*) FROM kws_platform._sqlx_migrations")
        .fetch_one(&pool)
        .await
        .expect("the store's migration history");
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/platform"))
        .expect("migrations/platform")
        .count();
    assert_eq!(usize::try_from(ours).ok(), Some(files), "one history row per migration file");
    let shared: Vec<String> =
        sqlx::query_scalar("SELECT description FROM public._sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .expect("the shared migration history");
    assert!(
        shared.iter().all(|d| !d.contains("platform")),
        "the store's migrations went into the shared history: {shared:?}"
    );
}

/// `Debug` of a store shows no part of its connection URL's credentials.
#[tokio::test]
async fn debug_shows_no_credentials() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let store = postgres_store(&db).await;
    let shown = format!("{store:?} {:?}", Arc::new(store.clone()) as Arc<dyn PlatformStore>);
    let url = db.url();
    let userinfo = url.split_once("://").and_then(|(_, rest)| rest.split_once('@')).map(|(u, _)| u);
    if let Some((_, password)) = userinfo.and_then(|u| u.split_once(':')) {
        assert!(!shown.contains(password), "Debug shows the password: {shown}");
    }
    assert!(!shown.contains(url), "Debug shows the URL: {shown}");
}
