//! [`PostgresAccountStore`] on a real PostgreSQL (`KWS_TEST_POSTGRES_URL`; skipped when unset,
//! failing under `KWS_TEST_REQUIRE=1`): the testkit's suites, corrupt rows, concurrent
//! writers and concurrent migrations.

#[path = "postgres/concurrency.rs"]
mod concurrency;

use std::sync::Arc;

use kws_accounts::{
    AccountSettings, AccountStore, Accounts, Error, PostgresAccountStore, Secret, testkit,
};
use sqlx::PgPool;

async fn store(pool: PgPool) -> PostgresAccountStore {
    PostgresAccountStore::new(pool).await.expect("migrations run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_passes_the_conformance_suite_directly_and_as_dyn() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let direct = store(db.pool().await).await;
    testkit::conformance(&direct).await;
    // Again on the same database (rows of the first run are there), through the trait.
    let boxed: Arc<dyn AccountStore> = Arc::new(store(db.pool().await).await);
    testkit::conformance(&*boxed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_passes_on_postgres() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let store: Arc<dyn AccountStore> = Arc::new(store(db.pool().await).await);
    let accounts = Accounts::new(store.clone(), AccountSettings::default());
    testkit::service_conformance(&accounts).await;
    testkit::service_conformance(&accounts).await;
    testkit::conformance(&*store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_twice_at_once_and_ignore_other_crates() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let (a, b) = (db.pool_with(2).await, db.pool_with(2).await);
    let (a, b) = tokio::join!(PostgresAccountStore::new(a), PostgresAccountStore::new(b));
    let (a, b) = (a.expect("first migration run"), b.expect("concurrent migration run"));
    // A migration of another crate, recorded in the same database.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (1, 'another crate', true, '\\x00', 0)",
    )
    .execute(a.pool())
    .await
    .expect("record another crate's migration");
    let c = store(db.pool().await).await;
    let ours: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE version = 20261202100001")
            .fetch_one(c.pool())
            .await
            .expect("count migrations");
    assert_eq!(ours, 1, "the crate's migration is applied once");
    testkit::sessions_by_digest_and_by_user(&b).await;
    testkit::tokens_by_digest_and_newest_first(&c).await;
}

async fn corrupt(pool: &PgPool, sql: &str) {
    sqlx::query(sql).execute(pool).await.expect("write a corrupt row");
}

fn names_column(e: Result<impl std::fmt::Debug, Error>, column: &str) {
    match e {
        Err(e @ Error::Backend { backend: "postgres", .. }) => {
            let shown = e.to_string();
            assert!(shown.contains(&format!("column {column}")), "{column}: {shown}");
        }
        other => panic!("{column}: expected a postgres Backend error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_are_backend_errors_naming_the_column() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let s = store(db.pool().await).await;
    let user = testkit::unique_user("corrupt");
    let good = Secret::generate("").digest();
    let hex =
        |h: &kws_accounts::SecretHash| h.0.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let token_sql = |id: &str, name: &str, hash: &str, scopes: &str| {
        format!(
            "INSERT INTO kws_accounts.tokens (id, user_name, name, hash, scopes, created_at) \
             VALUES ('{id}', '{name}', 't', '\\x{hash}', '{scopes}', now())"
        )
    };
    let pool = s.pool().clone();
    let id = || uuid::Uuid::now_v7().to_string();

    let bad_scopes = Secret::generate("").digest();
    corrupt(&pool, &token_sql(&id(), user.as_str(), &hex(&bad_scopes), "read,admin")).await;
    names_column(s.token_by_hash(&bad_scopes).await, "scopes");
    let no_scopes = Secret::generate("").digest();
    corrupt(&pool, &token_sql(&id(), user.as_str(), &hex(&no_scopes), "")).await;
    names_column(s.token_by_hash(&no_scopes).await, "scopes");

    let capitals = Secret::generate("").digest();
    corrupt(&pool, &token_sql(&id(), &user.as_str().to_uppercase(), &hex(&capitals), "read")).await;
    names_column(s.token_by_hash(&capitals).await, "user_name");
    let no_label = Secret::generate("").digest();
    corrupt(&pool, &token_sql(&id(), "not a label", &hex(&no_label), "read")).await;
    names_column(s.token_by_hash(&no_label).await, "user_name");

    let other = testkit::unique_user("corrupt-hash");
    corrupt(&pool, &token_sql(&id(), other.as_str(), "abcdef", "read")).await;
    names_column(s.tokens_of(&other).await, "hash");

    corrupt(
        &pool,
        &format!(
            "INSERT INTO kws_accounts.sessions (id, user_name, hash, created_at, expires_at) \
             VALUES ('{}', '-bad-', '\\x{}', now(), now())",
            id(),
            hex(&good)
        ),
    )
    .await;
    names_column(s.session_by_hash(&good).await, "user_name");
}
