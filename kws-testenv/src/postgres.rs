//! A fresh PostgreSQL database per test, dropped afterwards.

use sqlx::{Connection, Executor, PgConnection, PgPool, postgres::PgPoolOptions};

use crate::{random_suffix, unavailable};

/// A database made for one test; dropped (sessions terminated) when this value is dropped.
#[derive(Debug)]
pub struct TestDb {
    admin_url: String,
    name: String,
    url: String,
}

/// Creates a fresh database on the server named by `KWS_TEST_POSTGRES_URL` (an admin URL).
///
/// Returns `None` (after a loud skip message) when the variable is unset or the server does not
/// answer; panics instead under `KWS_TEST_REQUIRE=1`.
pub async fn postgres() -> Option<TestDb> {
    let Ok(admin_url) = std::env::var("KWS_TEST_POSTGRES_URL") else {
        return unavailable("PostgreSQL", "KWS_TEST_POSTGRES_URL is not set");
    };
    let mut admin = match PgConnection::connect(&admin_url).await {
        Ok(c) => c,
        Err(e) => return unavailable("PostgreSQL", format!("cannot connect to {admin_url}: {e}")),
    };
    let name = format!("kws_t_{}", random_suffix(12));
    if let Err(e) = admin.execute(format!("CREATE DATABASE \"{name}\"").as_str()).await {
        return unavailable("PostgreSQL", format!("cannot create a test database: {e}"));
    }
    let url = with_database(&admin_url, &name);
    Some(TestDb { admin_url, name, url })
}

/// `url` with its path (the database) replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl TestDb {
    /// The connection URL of the test database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The admin URL of the server (for tests that must act as the administrator).
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection pool to the test database.
    ///
    /// # Panics
    /// When the database cannot be reached (it was just created, so that is a test failure).
    pub async fn pool(&self) -> PgPool {
        self.pool_with(8).await
    }

    /// A pool of at most `max` connections.
    ///
    /// # Panics
    /// When the database cannot be reached.
    pub async fn pool_with(&self, max: u32) -> PgPool {
        match PgPoolOptions::new().max_connections(max).connect(&self.url).await {
            Ok(pool) => pool,
            Err(e) => panic!("test database {} unreachable: {e}", self.name),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop cannot await, and may run inside a runtime: do the work on a thread of its own.
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    if let Err(e) = admin.execute(sql.as_str()).await {
                        eprintln!("kws-testenv: could not drop test database {name}: {e}");
                    }
                }
            });
        });
        let _ = handle.join();
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_in_a_url() {
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:5432/postgres?sslmode=disable", "x"),
            "postgres://u:p@127.0.0.1:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
    }
}
