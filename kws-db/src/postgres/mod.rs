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

mod builder;
mod catalogue;
mod ident;
mod lock;
mod scram;
mod server;
mod step;

use std::fmt;

use kws_core::{DnsLabel, OwnerId};
use sqlx::{Executor, PgConnection, PgPool, postgres::PgConnectOptions};

use crate::{Credentials, DatabaseInfo, DatabaseProvisioner, Error, Password};
pub use builder::PostgresProvisionerBuilder;
use builder::admin_target;
use catalogue::State;
use ident::PgIdent;
use lock::OwnerLock;
use step::Abort;
pub use step::{CreateStep, Fault};

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
    fault: Option<(CreateStep, Fault)>,
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

impl PostgresProvisioner {
    /// Default number of databases per owner.
    pub const DEFAULT_QUOTA: u32 = 5;
    /// Default connection limit of each database's role.
    pub const DEFAULT_CONNECTION_LIMIT: u32 = 20;

    /// A builder on the admin connection `admin` (a role that may create roles and
    /// databases; see the module documentation).
    pub fn builder(admin: PgConnectOptions) -> PostgresProvisionerBuilder {
        PostgresProvisionerBuilder::new(admin)
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

    /// Stops `create` after `step` when a fault is injected there.
    async fn checkpoint(&self, conn: &mut PgConnection, step: CreateStep) -> Result<(), Abort> {
        let Some((at, fault)) = self.fault else { return Ok(()) };
        if at != step {
            return Ok(());
        }
        let injected = backend(format!("fault injected after {step:?}"));
        Err(match fault {
            Fault::Fail => Abort::Fail(injected),
            Fault::Crash => Abort::Crash(injected),
            Fault::Disconnect => {
                let suicide = sqlx::raw_sql("SELECT pg_terminate_backend(pg_backend_pid())");
                let ended = conn.execute(suicide).await;
                Abort::Fail(ended.err().map_or(injected, backend))
            }
        })
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
        self.checkpoint(conn, CreateStep::RoleCreated).await?;
        server::create_database(conn, ident).await?;
        self.checkpoint(conn, CreateStep::DatabaseCreated).await?;
        server::restrict_database(conn, ident).await?;
        self.checkpoint(conn, CreateStep::DatabaseRestricted).await?;
        server::restrict_schema(&self.admin, ident).await?;
        self.checkpoint(conn, CreateStep::SchemaRestricted).await?;
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
        let built = match self.checkpoint(conn, CreateStep::Reserved).await {
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
