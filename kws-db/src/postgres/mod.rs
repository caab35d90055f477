//! The PostgreSQL backend: an admin connection makes one role and one database per
//! `(owner, name)`, and keeps its bookkeeping in a catalogue table of the admin database.
//!
//! # Steps of `create`, and how a failure is undone
//! `CREATE DATABASE` cannot run in a transaction, so `create` is a sequence of committed steps
//! under the owner's advisory lock:
//! 1. a catalogue row in state `creating` (after the duplicate and quota checks);
//! 2. the role, with its marker comment (one transaction);
//! 3. the database, owned by the role and closed to connections;
//! 4. `REVOKE CONNECT, TEMPORARY ... FROM PUBLIC` on it, then open to connections;
//! 5. `REVOKE CREATE ON SCHEMA public FROM PUBLIC` inside it;
//! 6. the row moves to `ready`.
//!
//! A failing step undoes the earlier ones in reverse (database, role, row); only a role that
//! carries kws-db's marker, and a database that role owns, are removed (see `server`). If the
//! process dies instead, the row stays in `creating`; the next operation for that owner holds
//! the lock, so any such row is abandoned, and it removes the row's objects before doing
//! anything else. `drop_database` moves the row to `dropping` first, for the same reason.
//!
//! # Passwords
//! The provisioner sends the server a SCRAM-SHA-256 verifier it computed itself, never the
//! password. A tenant may still change its own password (PostgreSQL lets every role do that)
//! and choose the MD5 format; with `scram-sha-256` in `pg_hba.conf`, as the platform's server
//! has, such a password cannot log in, so the weaker format buys nothing.
//!
//! # What the admin role needs
//! A superuser is the tested setup. A role with only `CREATEDB` and `CREATEROLE` is not enough:
//! it must also be able to `SET ROLE` to each role it creates (for `CREATE DATABASE ... OWNER`),
//! which PostgreSQL 16 gives with `createrole_self_grant = 'set'`.

mod catalogue;
mod ident;
mod lock;
mod scram;
mod server;

use std::{fmt, time::Duration};

use kws_core::{DnsLabel, OwnerId};
use sqlx::{
    Connection, Executor, PgConnection, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::{Credentials, DatabaseInfo, DatabaseProvisioner, Error, Password};
use catalogue::State;
use ident::PgIdent;
use lock::OwnerLock;

/// The steps of `create`, in order (see the module documentation); fault injection in tests
/// names the step after which `create` fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CreateStep {
    /// The catalogue row exists, in state `creating`.
    Reserved,
    /// The role exists.
    RoleCreated,
    /// The database exists.
    DatabaseCreated,
    /// `CONNECT` and `TEMPORARY` are revoked from `PUBLIC`, and the database is open.
    DatabaseRestricted,
    /// `CREATE` on schema `public` is revoked from `PUBLIC`.
    SchemaRestricted,
}

impl CreateStep {
    /// Every step, in order.
    pub const ALL: [CreateStep; 5] = [
        CreateStep::Reserved,
        CreateStep::RoleCreated,
        CreateStep::DatabaseCreated,
        CreateStep::DatabaseRestricted,
        CreateStep::SchemaRestricted,
    ];
}

/// How a `create` was stopped: a failure is undone; a crash (a simulated process death) is
/// left for the next operation to clean up.
enum Abort {
    Fail(Error),
    Crash(Error),
}

impl From<Error> for Abort {
    fn from(e: Error) -> Self {
        Abort::Fail(e)
    }
}

/// A backend failure of PostgreSQL.
pub(crate) fn backend(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::Backend { backend: "postgres", source: e.into() }
}

/// A [`DatabaseProvisioner`] on a PostgreSQL server, through an admin connection.
///
/// Build it with [`PostgresProvisioner::builder`]; building applies the catalogue's migrations
/// (schema `kws_db` of the admin database).
#[derive(Clone)]
pub struct PostgresProvisioner {
    pool: PgPool,
    admin: PgConnectOptions,
    tenant_host: String,
    tenant_port: u16,
    quota: u32,
    connection_limit: u32,
    fault: Option<(CreateStep, bool)>,
}

/// Settings of a [`PostgresProvisioner`].
#[derive(Clone)]
pub struct PostgresProvisionerBuilder {
    admin: PgConnectOptions,
    tenant_endpoint: Option<(String, u16)>,
    quota: u32,
    connection_limit: u32,
    pool_size: u32,
    fault: Option<(CreateStep, bool)>,
}

/// The admin connection as `user@host:port/database`: never its password.
fn admin_target(admin: &PgConnectOptions) -> String {
    format!(
        "{}@{}:{}/{}",
        admin.get_username(),
        admin.get_host(),
        admin.get_port(),
        admin.get_database().unwrap_or("")
    )
}

impl fmt::Debug for PostgresProvisioner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresProvisioner")
            .field("admin", &admin_target(&self.admin))
            .field("tenant_host", &self.tenant_host)
            .field("tenant_port", &self.tenant_port)
            .field("quota", &self.quota)
            .field("connection_limit", &self.connection_limit)
            .field("fault", &self.fault)
            .finish_non_exhaustive()
    }
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

impl PostgresProvisioner {
    /// Default number of databases per owner.
    pub const DEFAULT_QUOTA: u32 = 5;
    /// Default connection limit of each database's role.
    pub const DEFAULT_CONNECTION_LIMIT: u32 = 20;

    /// A builder on the admin connection `admin` (a role that may create roles and
    /// databases; see the module documentation).
    pub fn builder(admin: PgConnectOptions) -> PostgresProvisionerBuilder {
        PostgresProvisionerBuilder {
            admin,
            tenant_endpoint: None,
            quota: Self::DEFAULT_QUOTA,
            connection_limit: Self::DEFAULT_CONNECTION_LIMIT,
            pool_size: 4,
            fault: None,
        }
    }

    /// The number of databases an owner may have.
    pub fn quota(&self) -> u32 {
        self.quota
    }

    fn credentials(&self, ident: &PgIdent, password: Password) -> Credentials {
        Credentials {
            host: self.tenant_host.clone(),
            port: self.tenant_port,
            database: ident.to_string(),
            role: ident.to_string(),
            password,
        }
    }

    /// Fails (or crashes) after `step` when a fault is injected there.
    fn checkpoint(&self, step: CreateStep) -> Result<(), Abort> {
        match self.fault {
            Some((at, crash)) if at == step => {
                let e = backend(format!("fault injected after {step:?}"));
                Err(if crash { Abort::Crash(e) } else { Abort::Fail(e) })
            }
            _ => Ok(()),
        }
    }

    /// Removes the objects of `owner`'s rows that an interrupted operation left, then the rows.
    /// Runs under the owner's lock, so no such operation is still running.
    async fn finish_unfinished(
        &self,
        conn: &mut PgConnection,
        owner: &OwnerId,
    ) -> Result<(), Error> {
        for name in catalogue::unfinished(conn, owner).await? {
            server::remove(conn, &PgIdent::derive(owner, &name), &server::marker(owner, &name))
                .await?;
            catalogue::forget(conn, owner, &name).await?;
        }
        Ok(())
    }

    /// Steps 2 to 5 of `create`.
    async fn build(
        &self,
        conn: &mut PgConnection,
        ident: &PgIdent,
        marker: &str,
        password: &Password,
    ) -> Result<(), Abort> {
        let verifier = scram::verifier(password).map_err(backend)?;
        server::create_role(conn, ident, marker, &verifier, self.connection_limit).await?;
        self.checkpoint(CreateStep::RoleCreated)?;
        server::create_database(conn, ident).await?;
        self.checkpoint(CreateStep::DatabaseCreated)?;
        server::restrict_database(conn, ident).await?;
        self.checkpoint(CreateStep::DatabaseRestricted)?;
        server::restrict_schema(&self.admin, ident).await?;
        self.checkpoint(CreateStep::SchemaRestricted)?;
        Ok(())
    }

    /// Everything `create` does under the owner's lock.
    async fn create_locked(
        &self,
        conn: &mut PgConnection,
        owner: &OwnerId,
        name: &DnsLabel,
        ident: &PgIdent,
    ) -> Result<Credentials, Abort> {
        self.finish_unfinished(conn, owner).await?;
        catalogue::reserve(conn, owner, name, ident, self.quota).await?;
        let marker = server::marker(owner, name);
        let password = Password::generate();
        let built = match self.checkpoint(CreateStep::Reserved) {
            Ok(()) => self.build(conn, ident, &marker, &password).await,
            Err(abort) => Err(abort),
        };
        let done = match built {
            Ok(()) => catalogue::set_state(conn, owner, name, State::Ready).await.map(drop),
            Err(Abort::Fail(e)) => Err(e),
            Err(crash @ Abort::Crash(_)) => return Err(crash),
        };
        match done {
            Ok(()) => Ok(self.credentials(ident, password)),
            Err(cause) => Err(Abort::Fail(undo(conn, owner, name, ident, cause).await)),
        }
    }

    /// Runs `op` under `owner`'s lock, after cleaning up what interrupted operations left.
    async fn with_owner_lock<T>(
        &self,
        owner: &OwnerId,
        op: impl AsyncFnOnce(&mut PgConnection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut lock = OwnerLock::acquire(&self.pool, owner).await.map_err(backend)?;
        let result = match self.finish_unfinished(lock.conn(), owner).await {
            Ok(()) => op(lock.conn()).await,
            Err(e) => Err(e),
        };
        lock.release().await;
        result
    }
}

/// Undoes a failed `create` (the database, the role, then the row) and returns why it failed.
async fn undo(
    conn: &mut PgConnection,
    owner: &OwnerId,
    name: &DnsLabel,
    ident: &PgIdent,
    cause: Error,
) -> Error {
    let cleaned = match server::remove(conn, ident, &server::marker(owner, name)).await {
        Ok(()) => catalogue::forget(conn, owner, name).await,
        Err(e) => Err(e),
    };
    match cleaned {
        Ok(()) => cause,
        Err(cleanup) => {
            Error::CleanupPending { cause: Box::new(cause), cleanup: Box::new(cleanup) }
        }
    }
}

impl PostgresProvisionerBuilder {
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

    /// Makes every `create` fail after `step`: undone as after any failure, or, with `crash`,
    /// left as a killed process would leave it (lock connection closed, nothing undone).
    #[cfg(feature = "testkit")]
    pub fn fail_after(mut self, step: CreateStep, crash: bool) -> Self {
        self.fault = Some((step, crash));
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

#[async_trait::async_trait]
impl DatabaseProvisioner for PostgresProvisioner {
    async fn create(&self, owner: &OwnerId, name: &DnsLabel) -> Result<Credentials, Error> {
        let ident = PgIdent::derive(owner, name);
        let mut lock = OwnerLock::acquire(&self.pool, owner).await.map_err(backend)?;
        match self.create_locked(lock.conn(), owner, name, &ident).await {
            Ok(creds) => {
                lock.release().await;
                Ok(creds)
            }
            Err(Abort::Fail(e)) => {
                lock.release().await;
                Err(e)
            }
            // As a dead process would: the lock's session ends, nothing is undone.
            Err(Abort::Crash(e)) => {
                drop(lock);
                Err(e)
            }
        }
    }

    async fn drop_database(&self, owner: &OwnerId, name: &DnsLabel) -> Result<(), Error> {
        self.with_owner_lock(owner, async |conn: &mut PgConnection| {
            if catalogue::state(conn, owner, name).await? != Some(State::Ready) {
                return Err(Error::NotFound { owner: owner.clone(), name: name.clone() });
            }
            catalogue::set_state(conn, owner, name, State::Dropping).await?;
            let (ident, marker) = (PgIdent::derive(owner, name), server::marker(owner, name));
            server::remove(conn, &ident, &marker).await?;
            catalogue::forget(conn, owner, name).await
        })
        .await
    }

    async fn list(&self, owner: &OwnerId) -> Result<Vec<DatabaseInfo>, Error> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        catalogue::list(&mut conn, owner).await
    }

    async fn rotate_password(
        &self,
        owner: &OwnerId,
        name: &DnsLabel,
    ) -> Result<Credentials, Error> {
        self.with_owner_lock(owner, async |conn: &mut PgConnection| {
            if catalogue::state(conn, owner, name).await? != Some(State::Ready) {
                return Err(Error::NotFound { owner: owner.clone(), name: name.clone() });
            }
            let ident = PgIdent::derive(owner, name);
            let password = Password::generate();
            let verifier = scram::verifier(&password).map_err(backend)?;
            server::set_password(conn, &ident, &verifier).await?;
            Ok(self.credentials(&ident, password))
        })
        .await
    }
}
