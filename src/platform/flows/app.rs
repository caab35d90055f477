//! Apps: publish `<app>.<domain>` → a port of one of the tenant's instances, over HTTPS with
//! the wildcard certificate; unpublish.

use chrono::Utc;
use futures::future::BoxFuture;
use kws_core::{DnsLabel, InstanceId, OwnerId};
use serde::{Deserialize, Serialize};

use super::{ended_error, finishing, hostname_key, instance::proxy_error, parse_name, undoable};
use crate::platform::{
    Error, Platform, Role, Scope,
    model::{AppSpec, AppStatus, CertificateState, InstanceSpec},
    ops::{Begin, Run, begin, request_of},
    store::{Claims, Object, OpState, Operation, PlatformStoreExt},
};

pub(crate) const PUBLISH: &str = "publish_app";
pub(crate) const UNPUBLISH: &str = "unpublish_app";

/// An app to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct PublishApp {
    /// Its name: a DNS label, unique over the platform (it is served at `<name>.<domain>`).
    pub name: String,
    /// The instance of the same tenant that serves it.
    pub instance: String,
    /// The instance's port.
    pub port: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Recorded {
    name: DnsLabel,
    spec: AppSpec,
}

impl Platform {
    /// Publishes an app of `tenant` (member role). Fails with `Invalid` (a bad name or port, or
    /// the IDE's port), `NotFound` (no such instance in the tenant), `AlreadyExists` (the
    /// hostname is taken by any tenant's app or instance) or `QuotaExceeded`; then no route or
    /// record is left.
    pub async fn publish_app(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        request: PublishApp,
        idempotency_key: Option<&str>,
    ) -> Result<Object<AppSpec>, Error> {
        scope.require(tenant, Role::Member)?;
        let name = self.public_name("name", &request.name)?;
        let instance_name = parse_name("instance", &request.instance)?;
        if request.port == 0 {
            return Err(Error::invalid("port", "0 is not a port"));
        }
        let instance =
            self.store().get::<InstanceSpec>(scope, tenant, instance_name.as_str()).await?;
        let ide_port = instance.spec.ide_port.unwrap_or(self.settings().ide.port);
        if request.port == ide_port {
            return Err(Error::invalid(
                "port",
                format!("{ide_port} is the IDE's port, not an app's"),
            ));
        }
        let spec = AppSpec { instance: InstanceId::from(instance_name), port: request.port };
        let recorded = Recorded { name: name.clone(), spec };
        let begun = begin(
            self,
            scope,
            tenant,
            PUBLISH,
            name.as_str(),
            idempotency_key,
            &request,
            &recorded,
        )
        .await?;
        let run = match begun {
            Begin::New(run) => run,
            Begin::Existing(op) if op.state == OpState::Succeeded => {
                return self.store().get::<AppSpec>(scope, tenant, name.as_str()).await;
            }
            Begin::Existing(op) => return Err(ended_error(&op)),
        };
        let body = async {
            let app = self.publish_steps(&run, tenant, &recorded).await?;
            Ok((app.clone(), serde_json::json!({ "app": app.meta.id })))
        };
        undoable(&run, undo_publish, body).await
    }

    async fn publish_steps(
        &self,
        run: &Run,
        tenant: &OwnerId,
        recorded: &Recorded,
    ) -> Result<Object<AppSpec>, Error> {
        let store = self.store();
        let op = Scope::Operator;
        let name = &recorded.name;
        let unique = Some(hostname_key(name));
        let app = run
            .step(
                "record",
                store.create(
                    &op,
                    tenant,
                    name,
                    unique,
                    Claims::default(),
                    &recorded.spec,
                    Some(run.id()),
                ),
            )
            .await?;
        let instance = store.get::<InstanceSpec>(&op, tenant, app.spec.instance.as_str()).await?;
        let route = self.app_route(&app, &instance)?.ok_or_else(|| Error::InUse {
            what: format!("instance {}", instance.meta.name),
            reason: "it has no address yet".to_owned(),
        })?;
        let proxy = self.proxy();
        run.step("route", async { proxy.publish(route).await.map_err(proxy_error) }).await?;
        run.step("observe", self.observe_app(tenant, name)).await?;
        self.publish_object(tenant, &app.meta, "created");
        store.get::<AppSpec>(&op, tenant, name.as_str()).await
    }

    /// Records what the proxy serves for the app, and the certificate's state.
    pub(crate) async fn observe_app(&self, tenant: &OwnerId, name: &DnsLabel) -> Result<(), Error> {
        let host = self.hostname(name)?;
        let routed = kws_proxy::ProxyWriterExt::route(self.proxy().as_ref(), &host)
            .await
            .map_err(proxy_error)?;
        let status = AppStatus {
            routed: routed.is_some(),
            upstream: routed.map(|r| r.upstream().to_string()),
            certificate: self.certificate_state(),
        };
        let store = self.store();
        store
            .observe::<AppSpec>(&Scope::Operator, tenant, name.as_str(), Some(&status), Utc::now())
            .await?;
        Ok(())
    }

    /// The wildcard certificate's state.
    pub(crate) fn certificate_state(&self) -> CertificateState {
        #[cfg(feature = "acme")]
        if let Some(issuer) = self.certs() {
            return match issuer.current() {
                Ok(Some(cert)) => {
                    let not_after = chrono::DateTime::<Utc>::from(cert.not_after);
                    if not_after > Utc::now() {
                        CertificateState::Valid { not_after }
                    } else {
                        CertificateState::Missing
                    }
                }
                _ => CertificateState::Missing,
            };
        }
        CertificateState::Unmanaged
    }

    /// Unpublishes an app (member role): its route, then its record.
    pub async fn unpublish_app(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
    ) -> Result<(), Error> {
        scope.require(tenant, Role::Member)?;
        let name = parse_name("name", name)?;
        self.store().get::<AppSpec>(scope, tenant, name.as_str()).await?;
        let begun =
            begin(self, scope, tenant, UNPUBLISH, name.as_str(), None, &name, &name).await?;
        let run = match begun {
            Begin::New(run) => run,
            Begin::Existing(op) => return Err(ended_error(&op)),
        };
        let body = async {
            self.unpublish_steps(&run, tenant, &name).await?;
            Ok(((), serde_json::Value::Null))
        };
        finishing(&run, body).await
    }

    async fn unpublish_steps(
        &self,
        run: &Run,
        tenant: &OwnerId,
        name: &DnsLabel,
    ) -> Result<(), Error> {
        let mark = self.store().mark_removing::<AppSpec>(&Scope::Operator, tenant, name.as_str());
        run.step("mark", mark).await?;
        run.step("route", self.unpublish_host(name)).await?;
        run.step("record", self.remove_app_record(tenant, name)).await
    }

    async fn remove_app_record(&self, tenant: &OwnerId, name: &DnsLabel) -> Result<(), Error> {
        if let Some(app) =
            self.store().remove::<AppSpec>(&Scope::Operator, tenant, name.as_str()).await?
        {
            self.publish_object(tenant, &app.meta, "deleted");
        }
        Ok(())
    }

    /// Every trace of an app: its route and its record.
    pub(crate) async fn remove_app_everywhere(
        &self,
        tenant: &OwnerId,
        name: &DnsLabel,
    ) -> Result<(), Error> {
        self.unpublish_host(name).await?;
        self.remove_app_record(tenant, name).await
    }
}

/// Undoes one step of a publish.
pub(crate) fn undo_publish<'a>(
    platform: &'a Platform,
    op: &'a Operation,
    step: &'a str,
) -> BoxFuture<'a, Result<(), Error>> {
    Box::pin(async move {
        let recorded = request_of::<Recorded>(op)?;
        match step {
            "route" => {
                // Only the route of this operation's own record (the record made the name ours).
                let own = platform
                    .store()
                    .find::<AppSpec>(&Scope::Operator, &op.tenant, recorded.name.as_str())
                    .await?
                    .is_some_and(|app| app.origin == Some(op.id));
                match own {
                    true => platform.unpublish_host(&recorded.name).await,
                    false => Ok(()),
                }
            }
            "record" => platform.remove_own::<AppSpec>(op, recorded.name.as_str()).await,
            _ => Ok(()),
        }
    })
}

/// Finishes an interrupted unpublish.
pub(crate) fn rerun_unpublish(platform: &Platform, run: Run) -> BoxFuture<'_, Result<(), Error>> {
    Box::pin(async move {
        let op = run.operation().await;
        let name = request_of::<DnsLabel>(&op)?;
        platform.unpublish_steps(&run, &op.tenant, &name).await?;
        run.succeed(serde_json::Value::Null).await;
        Ok(())
    })
}
