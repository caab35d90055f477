//! A test's admin database (holding the catalogue) and the cleanup of whatever the test made on
//! the cluster, also when the test fails.

use kws_db::postgres::{CreateStep, Fault, PostgresProvisioner};
use kws_testenv::TestDb;
use sqlx::{Connection, Executor, PgConnection, Row, postgres::PgConnectOptions};

/// The admin side of a test. Dropping it removes every database and role recorded in its
/// catalogue (the catalogue records each before it exists), then the admin database.
pub(crate) struct Fixture {
    db: TestDb,
}

impl Fixture {
    pub(crate) async fn new() -> Option<Self> {
        kws_testenv::postgres().await.map(|db| Self { db })
    }

    pub(crate) fn admin_options(&self) -> PgConnectOptions {
        self.db.url().parse().expect("admin URL")
    }

    pub(crate) fn admin_url(&self) -> &str {
        self.db.url()
    }

    pub(crate) fn admin_database(&self) -> &str {
        self.db.name()
    }

    pub(crate) async fn admin(&self) -> PgConnection {
        PgConnection::connect(self.db.url()).await.expect("admin connection")
    }

    /// A provisioner whose every `create` stops after `step` as `fault` says.
    pub(crate) async fn failing(
        &self,
        quota: u32,
        step: CreateStep,
        fault: Fault,
    ) -> PostgresProvisioner {
        PostgresProvisioner::builder(self.admin_options())
            .max_databases_per_owner(quota)
            .fail_after(step, fault)
            .build()
            .await
            .expect("provisioner")
    }

    pub(crate) async fn provisioner(&self, quota: u32) -> PostgresProvisioner {
        PostgresProvisioner::builder(self.admin_options())
            .max_databases_per_owner(quota)
            .build()
            .await
            .expect("provisioner")
    }
}

/// `[roles, databases, catalogue rows]` named `ident` (0 or 1 each).
pub(crate) async fn objects(admin: &mut PgConnection, ident: &str) -> [i64; 3] {
    let row = sqlx::query(
        "SELECT (SELECT count(*) FROM pg_roles WHERE rolname = $1) AS roles, \
                (SELECT count(*) FROM pg_database WHERE datname = $1) AS dbs, \
                (SELECT count(*) FROM kws_db.databases WHERE pg_name = $1) AS rows",
    )
    .bind(ident)
    .fetch_one(admin)
    .await
    .expect("count objects");
    ["roles", "dbs", "rows"].map(|c| row.get(c))
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let url = self.db.url().to_owned();
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                let mut admin = PgConnection::connect(&url).await?;
                let names: Vec<String> = sqlx::query_scalar("SELECT pg_name FROM kws_db.databases")
                    .fetch_all(&mut admin)
                    .await
                    .unwrap_or_default();
                for name in names {
                    let q = format!("\"{}\"", name.replace('"', "\"\""));
                    let lit = name.replace('\'', "''");
                    // One statement per call: DROP DATABASE cannot run in the implicit
                    // transaction of a multi-statement string.
                    for sql in [
                        format!("DROP DATABASE IF EXISTS {q} WITH (FORCE)"),
                        format!(
                            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
                             WHERE usename = '{lit}'"
                        ),
                        format!("DROP ROLE IF EXISTS {q}"),
                    ] {
                        if let Err(e) = admin.execute(sqlx::raw_sql(&sql)).await {
                            eprintln!("kws-db test cleanup: {name}: {e}");
                        }
                    }
                }
                Ok::<(), sqlx::Error>(())
            })?;
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        });
        if let Ok(Err(e)) = cleanup.join() {
            eprintln!("kws-db test cleanup failed: {e}");
        }
    }
}
