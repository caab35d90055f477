//! Tenants, users and members; deleting a tenant with everything it owns, in dependency order,
//! as one operation.

use chrono::Utc;
use futures::future::BoxFuture;
use kws_core::{DnsLabel, OwnerId};

use super::{ended_error, finishing, parse_name};
use crate::platform::{
    Error, ErrorKind, Platform, Role, Scope,
    model::{AppSpec, DatabaseSpec, DeviceSpec, InstanceSpec},
    ops::{Begin, Run, begin},
    store::{Member, Object, PlatformStoreExt, Quotas, Tenant, User},
};

pub(crate) const DELETE: &str = "delete_tenant";

impl Platform {
    /// Creates a tenant (operator only), with the platform's default quotas unless given.
    pub async fn create_tenant(
        &self,
        scope: &Scope,
        id: OwnerId,
        display_name: &str,
        quotas: Option<Quotas>,
    ) -> Result<Tenant, Error> {
        scope.require_operator()?;
        let display_name = check_display_name(display_name)?;
        let quotas = quotas.unwrap_or(self.settings().default_quotas);
        self.store().create_tenant(scope, id, display_name, quotas).await
    }

    /// Changes a tenant's quotas (operator only), at the version the caller read.
    pub async fn set_quotas(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        expected_version: u64,
        quotas: Quotas,
    ) -> Result<Tenant, Error> {
        scope.require_operator()?;
        let current = self.store().get_tenant(scope, tenant).await?;
        self.store()
            .update_tenant(scope, tenant, expected_version, current.display_name, quotas)
            .await
    }

    /// Creates a user (operator only).
    pub async fn create_user(
        &self,
        scope: &Scope,
        name: &str,
        display_name: &str,
        operator: bool,
    ) -> Result<User, Error> {
        scope.require_operator()?;
        let user = User {
            name: parse_name("user", name)?,
            display_name: check_display_name(display_name)?,
            operator,
            created_at: Utc::now(),
        };
        self.store().create_user(scope, user).await
    }

    /// Makes `user` a member of `tenant` with `role`, or changes its role (tenant admin).
    pub async fn set_member(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        user: &str,
        role: Role,
    ) -> Result<Member, Error> {
        scope.require(tenant, Role::Admin)?;
        let user = parse_name("user", user)?;
        // A tenant admin may name only existing users; it learns no more about them.
        self.store().put_member(&Scope::Operator, tenant, &user, role).await.map_err(|e| match e {
            Error::NotFound { kind: "user", .. } => Error::not_found("user", &user),
            e => e,
        })
    }

    /// Ends a membership (tenant admin).
    pub async fn remove_member(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        user: &str,
    ) -> Result<(), Error> {
        scope.require(tenant, Role::Admin)?;
        let user = parse_name("user", user)?;
        self.store().remove_member(scope, tenant, &user).await
    }

    /// The scopes a user has: one per tenant it is a member of, or the operator's.
    pub async fn scopes_of(&self, user: &DnsLabel) -> Result<Vec<Scope>, Error> {
        let store = self.store();
        let found = store.get_user(&Scope::Operator, user).await?;
        if found.operator {
            return Ok(vec![Scope::Operator]);
        }
        let members = store.memberships(&Scope::Operator, user).await?;
        Ok(members.into_iter().map(|m| Scope::tenant(m.tenant, m.role)).collect())
    }

    /// The instance `name` of a tenant `user` is a member of (in any role), or `None`: who
    /// may enter that instance's IDE. Being an operator is not enough; a member is.
    pub async fn member_instance(
        &self,
        user: &DnsLabel,
        name: &str,
    ) -> Result<Option<Object<InstanceSpec>>, Error> {
        let store = self.store();
        for m in store.memberships(&Scope::Operator, user).await? {
            match store.get::<InstanceSpec>(&Scope::Operator, &m.tenant, name).await {
                Ok(found) => return Ok(Some(found)),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Deletes a tenant and everything it owns (operator only), as one operation, in
    /// dependency order: apps, instances (with their networks), devices, databases, job
    /// history, the firewall's entries, then the tenant. Interrupted, it is finished by the
    /// reaper.
    pub async fn delete_tenant(&self, scope: &Scope, tenant: &OwnerId) -> Result<(), Error> {
        scope.require_operator()?;
        self.store().get_tenant(scope, tenant).await?;
        let begun =
            begin(self, scope, tenant, DELETE, tenant.as_str(), None, tenant, tenant).await?;
        let run = match begun {
            Begin::New(run) => run,
            Begin::Existing(op) => return Err(ended_error(&op)),
        };
        let body = async {
            self.delete_steps(&run, tenant).await?;
            Ok(((), serde_json::Value::Null))
        };
        finishing(&run, body).await
    }

    async fn delete_steps(&self, run: &Run, tenant: &OwnerId) -> Result<(), Error> {
        let store = self.store();
        let op = Scope::Operator;
        run.step("apps", async {
            for app in store.list_all::<AppSpec>(&op, Some(tenant)).await? {
                self.remove_app_everywhere(tenant, &app.meta.name).await?;
            }
            Ok(())
        })
        .await?;
        run.step("instances", async {
            let instances = store.list_all::<InstanceSpec>(&op, Some(tenant)).await?;
            if instances.is_empty() && self.runtime().is_err() {
                return Ok(());
            }
            for instance in instances {
                self.unpublish_host(&instance.meta.name).await?;
                self.purge_instance(tenant, &instance.meta.name).await?;
                store.remove::<InstanceSpec>(&op, tenant, instance.meta.name.as_str()).await?;
            }
            self.drop_network_if_unused(tenant).await
        })
        .await?;
        run.step("devices", async {
            for device in store.list_all::<DeviceSpec>(&op, Some(tenant)).await? {
                self.purge_device_everywhere(tenant, &device).await?;
            }
            Ok(())
        })
        .await?;
        run.step("databases", async {
            for db in store.list_all::<DatabaseSpec>(&op, Some(tenant)).await? {
                self.drop_database_everywhere(tenant, &db.meta.name).await?;
            }
            Ok(())
        })
        .await?;
        run.step("firewall", self.apply_firewall()).await?;
        run.step("tenant", async {
            match store.delete_tenant(&op, tenant).await {
                Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await
    }
}

fn check_display_name(raw: &str) -> Result<String, Error> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 100 || trimmed.chars().any(char::is_control)
    {
        return Err(Error::invalid(
            "display_name",
            format!(
                "{:?} is not 1 to 100 characters without control characters",
                raw.escape_debug()
            ),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Finishes an interrupted tenant deletion.
pub(crate) fn rerun_delete(platform: &Platform, run: Run) -> BoxFuture<'_, Result<(), Error>> {
    Box::pin(async move {
        let op = run.operation().await;
        platform.delete_steps(&run, &op.tenant).await?;
        run.succeed(serde_json::Value::Null).await;
        Ok(())
    })
}
