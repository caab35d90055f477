//! The builder of [`PostgresProvisioner`], and the catalogue's migrations it applies.

use std::{fmt, time::Duration};

use sqlx::{
    Connection, Executor, PgConnection,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use super::{CreateStep, Fault, PostgresProvisioner, backend, catalogue};
use crate::Error;

/// Settings of a [`PostgresProvisioner`].
#[derive(Clone)]
pub struct PostgresProvisionerBuilder {
    admin: PgConnectOptions,
    tenant_endpoint: Option<(String, u16)>,
    quota: u32,
    connection_limit: u32,
    pool_size: u32,
    fault: Option<(CreateStep, Fault)>,
}

/// The admin connection as `user@host:port/database`: never its password.
pub(super) fn admin_target(admin: &PgConnectOptions) -> String {
    format!(
        "{}@{}:{}/{}",
        admin.get_username(),
        admin.get_host(),
        admin.get_port(),
        admin.get_database().unwrap_or("")
    )
}

impl fmt::Debug for PostgresProvisionerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresProvisionerBuilder")
            .field("admin", &admin_target(&self.admin))
            .field("tenant_endpoint", &self.tenant_endpoint)
            .field("quota", &self.quota)
            .field("connection_limit", &self.connection_limit)
            .field("pool_size", &self.pool_size)
            .field("fault", &self.fault)
            .finish()
    }
}

impl PostgresProvisionerBuilder {
    pub(super) fn new(admin: PgConnectOptions) -> Self {
        Self {
            admin,
            tenant_endpoint: None,
            quota: PostgresProvisioner::DEFAULT_QUOTA,
            connection_limit: PostgresProvisioner::DEFAULT_CONNECTION_LIMIT,
            pool_size: 4,
            fault: None,
        }
    }

    /// The host and port tenants use to reach the server (default: those of the admin
    /// connection).
    pub fn tenant_endpoint(mut self, host: impl Into<String>, port: u16) -> Self {
        self.tenant_endpoint = Some((host.into(), port));
        self
    }

    /// The number of databases an owner may have (default [`PostgresProvisioner::DEFAULT_QUOTA`]).
    pub fn max_databases_per_owner(mut self, quota: u32) -> Self {
        self.quota = quota;
        self
    }

    /// The connection limit of each database's role (default
    /// [`PostgresProvisioner::DEFAULT_CONNECTION_LIMIT`]).
    pub fn connection_limit(mut self, limit: u32) -> Self {
        self.connection_limit = limit;
        self
    }

    /// The size of the admin connection pool (default 4); one connection is held per
    /// operation in flight.
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// Makes every `create` stop after `step` as `fault` says (for tests of atomicity and
    /// recovery).
    #[cfg(feature = "testkit")]
    pub fn fail_after(mut self, step: CreateStep, fault: Fault) -> Self {
        self.fault = Some((step, fault));
        self
    }

    /// Connects, applies the catalogue's migrations and returns the provisioner.
    pub async fn build(self) -> Result<PostgresProvisioner, Error> {
        migrate(&self.admin).await?;
        let pool = PgPoolOptions::new()
            .max_connections(self.pool_size)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(self.admin.clone())
            .await
            .map_err(backend)?;
        let (tenant_host, tenant_port) = self
            .tenant_endpoint
            .unwrap_or_else(|| (self.admin.get_host().to_owned(), self.admin.get_port()));
        Ok(PostgresProvisioner {
            pool,
            admin: self.admin,
            tenant_host,
            tenant_port,
            quota: self.quota,
            connection_limit: self.connection_limit,
            fault: self.fault,
        })
    }
}

/// Creates the catalogue's schema and applies the migrations, with the migration history in
/// that schema too.
async fn migrate(admin: &PgConnectOptions) -> Result<(), Error> {
    let mut conn = PgConnection::connect_with(admin).await.map_err(backend)?;
    let setup = format!(
        "BEGIN; SELECT pg_advisory_xact_lock(hashtext('kws_db migrations')); \
         CREATE SCHEMA IF NOT EXISTS {0}; COMMIT; SET search_path TO {0}",
        catalogue::SCHEMA
    );
    conn.execute(sqlx::raw_sql(&setup)).await.map_err(backend)?;
    let migrated = sqlx::migrate!("./migrations").run(&mut conn).await.map_err(backend);
    let closed = conn.close().await.map_err(backend);
    migrated.and(closed)
}
