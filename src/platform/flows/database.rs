//! Managed databases: create (quota → database and its scoped role), rotate the password, drop.

use futures::future::BoxFuture;
use kws_core::{DnsLabel, OwnerId};
use kws_db::Credentials;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Started, ended_error, finishing, parse_name, undoable};
use crate::platform::{
    Error, Platform, Role, Scope,
    model::DatabaseSpec,
    ops::{Run, begin, request_of},
    store::{Claims, Object, Operation, PlatformStoreExt},
};

pub(crate) const CREATE: &str = "create_database";
pub(crate) const CHANGE: &str = "change_database";

/// A database just created, or a password just rotated.
#[derive(Debug, Clone)]
pub struct DatabaseCreated {
    /// The database.
    pub database: Object<DatabaseSpec>,
    /// How to connect, with the only copy of the password (kws keeps none); `None` for a
    /// retry with the same idempotency key of a create that succeeded (rotate the password
    /// to get one).
    pub credentials: Option<Credentials>,
    /// The operation.
    pub operation: Uuid,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Change {
    name: DnsLabel,
    action: String,
}

impl Platform {
    /// Creates a database of `tenant` (member role), with a role that can reach only it.
    /// Fails with `Invalid`, `AlreadyExists`, `QuotaExceeded` or `Unavailable` (no PostgreSQL
    /// configured); then neither database, role nor record is left.
    pub async fn create_database(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
        idempotency_key: Option<&str>,
    ) -> Result<DatabaseCreated, Error> {
        scope.require(tenant, Role::Member)?;
        let name = parse_name("name", name)?;
        self.databases()?;
        self.store().get_tenant(scope, tenant).await?;
        let begun =
            begin(self, scope, tenant, CREATE, name.as_str(), idempotency_key, &name, &name)
                .await?;
        let run = match Started::from(begun) {
            Started::Fresh(run) => run,
            Started::Done(op) if op.state == crate::platform::store::OpState::Succeeded => {
                let database =
                    self.store().get::<DatabaseSpec>(scope, tenant, name.as_str()).await?;
                return Ok(DatabaseCreated { database, credentials: None, operation: op.id });
            }
            Started::Done(op) => return Err(ended_error(&op)),
        };
        let body = async {
            let created = self.create_steps(&run, tenant, &name).await?;
            let result = serde_json::json!({ "database": created.database.meta.id });
            Ok((created, result))
        };
        undoable(&run, undo_create, body).await
    }

    async fn create_steps(
        &self,
        run: &Run,
        tenant: &OwnerId,
        name: &DnsLabel,
    ) -> Result<DatabaseCreated, Error> {
        let store = self.store();
        let op = Scope::Operator;
        let spec = DatabaseSpec { database: None, role: None, host: None, port: None };
        let mut database = run
            .step(
                "record",
                store.create(&op, tenant, name, None, Claims::default(), &spec, Some(run.id())),
            )
            .await?;
        let provisioner = self.databases()?;
        let credentials = run
            .step("database", async { provisioner.create(tenant, name).await.map_err(db_error) })
            .await?;
        database.spec = DatabaseSpec {
            database: Some(credentials.database.clone()),
            role: Some(credentials.role.clone()),
            host: Some(credentials.host.clone()),
            port: Some(credentials.port),
        };
        let database = store.update(&op, &database).await?;
        self.publish_object(tenant, &database.meta, "created");
        Ok(DatabaseCreated { database, credentials: Some(credentials), operation: run.id() })
    }

    /// Gives the database's role a new password (member role) and returns it, once.
    pub async fn rotate_database_password(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
    ) -> Result<DatabaseCreated, Error> {
        let (run, change) = self.begin_change(scope, tenant, name, "rotate").await?;
        let body = async {
            let provisioner = self.databases()?;
            let credentials = run
                .step("database", async {
                    provisioner.rotate_password(tenant, &change.name).await.map_err(db_error)
                })
                .await?;
            let database = self
                .store()
                .get::<DatabaseSpec>(&Scope::Operator, tenant, change.name.as_str())
                .await?;
            let out =
                DatabaseCreated { database, credentials: Some(credentials), operation: run.id() };
            Ok((out, serde_json::Value::Null))
        };
        finishing(&run, body).await
    }

    /// Drops the database and its role (member role); its sessions end.
    pub async fn drop_database(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
    ) -> Result<(), Error> {
        let (run, change) = self.begin_change(scope, tenant, name, "drop").await?;
        let body = async {
            self.drop_steps(&run, tenant, &change.name).await?;
            Ok(((), serde_json::Value::Null))
        };
        finishing(&run, body).await
    }

    async fn begin_change(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
        action: &str,
    ) -> Result<(Run, Change), Error> {
        scope.require(tenant, Role::Member)?;
        let name = parse_name("name", name)?;
        self.databases()?;
        self.store().get::<DatabaseSpec>(scope, tenant, name.as_str()).await?;
        let change = Change { name, action: action.to_owned() };
        let target = change.name.to_string();
        let begun = begin(self, scope, tenant, CHANGE, &target, None, &change, &change).await?;
        match Started::from(begun) {
            Started::Fresh(run) => Ok((run, change)),
            Started::Done(op) => Err(ended_error(&op)),
        }
    }

    async fn drop_steps(&self, run: &Run, tenant: &OwnerId, name: &DnsLabel) -> Result<(), Error> {
        run.step("database", self.drop_database_everywhere(tenant, name)).await
    }

    /// Drops the database (none is fine) and its record.
    pub(crate) async fn drop_database_everywhere(
        &self,
        tenant: &OwnerId,
        name: &DnsLabel,
    ) -> Result<(), Error> {
        match self.databases()?.drop_database(tenant, name).await {
            Ok(()) | Err(kws_db::Error::NotFound { .. }) => {}
            Err(e) => return Err(db_error(e)),
        }
        if let Some(db) =
            self.store().remove::<DatabaseSpec>(&Scope::Operator, tenant, name.as_str()).await?
        {
            self.publish_object(tenant, &db.meta, "deleted");
        }
        Ok(())
    }
}

pub(crate) fn db_error(e: kws_db::Error) -> Error {
    use kws_db::Error as D;
    match e {
        D::InvalidName(e) => Error::invalid("name", e),
        D::Uppercase { what, value, .. } => {
            Error::invalid("name", format!("{what} {value:?} has uppercase letters"))
        }
        D::AlreadyExists { owner, name } => {
            Error::AlreadyExists { kind: "database", name: format!("{owner}/{name}") }
        }
        D::NotFound { owner, name } => Error::not_found("database", format!("{owner}/{name}")),
        D::QuotaExceeded { owner, limit } => Error::QuotaExceeded {
            tenant: owner.to_string(),
            resource: "databases",
            limit: limit.into(),
        },
        e => Error::backend("databases", e),
    }
}

/// Undoes one step of a create.
pub(crate) fn undo_create<'a>(
    platform: &'a Platform,
    op: &'a Operation,
    step: &'a str,
) -> BoxFuture<'a, Result<(), Error>> {
    Box::pin(async move {
        let name = request_of::<DnsLabel>(op)?;
        match step {
            "database" => {
                // Only when the record is this operation's (so the database of the name is).
                let own = platform
                    .store()
                    .find::<DatabaseSpec>(&Scope::Operator, &op.tenant, name.as_str())
                    .await?
                    .is_some_and(|db| db.origin == Some(op.id));
                if own {
                    match platform.databases()?.drop_database(&op.tenant, &name).await {
                        Ok(()) | Err(kws_db::Error::NotFound { .. }) => {}
                        Err(e) => return Err(db_error(e)),
                    }
                }
                Ok(())
            }
            "record" => platform.remove_own::<DatabaseSpec>(op, name.as_str()).await,
            _ => Ok(()),
        }
    })
}

/// Finishes an interrupted rotation or drop (a rotation's new password was never shown: it is
/// rotated again, so only a caller who gets it holds it).
pub(crate) fn rerun_change(platform: &Platform, run: Run) -> BoxFuture<'_, Result<(), Error>> {
    Box::pin(async move {
        let op = run.operation().await;
        let change = request_of::<Change>(&op)?;
        match change.action.as_str() {
            "drop" => platform.drop_steps(&run, &op.tenant, &change.name).await?,
            _ => {
                let provisioner = platform.databases()?;
                run.step("database", async {
                    provisioner
                        .rotate_password(&op.tenant, &change.name)
                        .await
                        .map(drop)
                        .map_err(db_error)
                })
                .await?;
            }
        }
        run.succeed(serde_json::Value::Null).await;
        Ok(())
    })
}
