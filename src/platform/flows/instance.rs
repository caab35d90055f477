//! Instances: launch (record → container with its address and owner network → firewall with
//! the new bridge isolated, before anything runs → start → IDE route → observed), the actions
//! (start, stop, restart, redeploy) and remove.

use std::collections::BTreeMap;

use chrono::Utc;
use futures::future::BoxFuture;
use kws_core::{DnsLabel, InstanceId, OwnerId};
use kws_runtime::{ImageRef, InstanceInfo, InstanceKey, InstanceState, Resources};
use serde::{Deserialize, Serialize};

use super::{ended_error, finishing, hostname_key, parse_name, undoable};
use crate::platform::{
    Error, Platform, Role, Scope,
    model::{AppSpec, Desired, InstanceResources, InstanceSpec, InstanceStatus, RunState},
    ops::{Begin, Run, begin, request_of},
    store::{Claims, Object, OpState, Operation, PlatformStoreExt},
};

pub(crate) const LAUNCH: &str = "launch_instance";
pub(crate) const ACTION: &str = "instance_action";
pub(crate) const REMOVE: &str = "remove_instance";

/// An instance to launch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct LaunchInstance {
    /// Its name: a DNS label, unique over the platform (its IDE is at `<name>.<domain>`).
    pub name: String,
    /// The image; `None` runs the platform's IDE image.
    pub image: Option<String>,
    /// CPU in thousandths (`None`: the platform's default).
    pub cpu_millis: Option<u64>,
    /// Memory in MiB (`None`: the platform's default).
    pub memory_mb: Option<u64>,
    /// Ports its apps will listen on.
    #[serde(default)]
    pub app_ports: Vec<u16>,
    /// Its environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The command it runs instead of its image's.
    #[serde(default)]
    pub command: Option<Vec<String>>,
}

impl LaunchInstance {
    /// An instance named `name` with every default.
    pub fn named(name: &str) -> Result<Self, Error> {
        Ok(Self {
            name: name.to_owned(),
            image: None,
            cpu_millis: None,
            memory_mb: None,
            app_ports: Vec::new(),
            env: BTreeMap::new(),
            command: None,
        })
    }
}

/// What a redeploy changes; identity, workspace and address stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Redeploy {
    /// A new image.
    pub image: Option<String>,
    /// A new environment (replacing the old one).
    pub env: Option<BTreeMap<String, String>>,
    /// The instance's version this change was made against (`If-Match`): a change of an
    /// instance that is at another version is `Conflict`, checked when its desired state is
    /// written (that write is conditional on it). `None`: whatever the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
}

/// What a launch records for its steps and their undo.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Launch {
    name: DnsLabel,
    spec: InstanceSpec,
}

/// What an action records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Action {
    name: DnsLabel,
    action: String,
    change: Redeploy,
}

impl Platform {
    /// Launches an instance of `tenant` (member role) and returns it running. Fails with
    /// `Invalid` (naming the field), `AlreadyExists`, `QuotaExceeded`, `Exhausted` or
    /// `Unavailable` (no container engine); then nothing is left: no record, address lease,
    /// container, network, volume or route.
    pub async fn launch_instance(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        request: LaunchInstance,
        idempotency_key: Option<&str>,
    ) -> Result<Object<InstanceSpec>, Error> {
        scope.require(tenant, Role::Member)?;
        let launch = self.check_launch(tenant, &request)?;
        self.runtime()?;
        self.store().get_tenant(scope, tenant).await?;
        let name = launch.name.clone();
        let begun =
            begin(self, scope, tenant, LAUNCH, name.as_str(), idempotency_key, &request, &launch)
                .await?;
        let run = match begun {
            Begin::New(run) => run,
            Begin::Existing(op) if op.state == OpState::Succeeded => {
                return self.store().get::<InstanceSpec>(scope, tenant, name.as_str()).await;
            }
            Begin::Existing(op) => return Err(ended_error(&op)),
        };
        let body = async {
            let instance = self.launch_steps(&run, tenant, &launch).await?;
            let result = serde_json::json!({ "instance": instance.meta.id });
            Ok((instance, result))
        };
        undoable(&run, undo_launch, body).await
    }

    /// Checks a launch request as a whole before anything is made.
    fn check_launch(&self, tenant: &OwnerId, request: &LaunchInstance) -> Result<Launch, Error> {
        let name = self.public_name("name", &request.name)?;
        let s = self.settings();
        let resources = InstanceResources {
            cpu_millis: request.cpu_millis.unwrap_or(s.instance_defaults.cpu_millis),
            memory_mb: request.memory_mb.unwrap_or(s.instance_defaults.memory_mb),
        };
        if resources.cpu_millis == 0 || resources.cpu_millis > s.instance_max.cpu_millis {
            let max = s.instance_max.cpu_millis;
            return Err(Error::invalid(
                "cpu_millis",
                format!("{} is not 1 to {max}", resources.cpu_millis),
            ));
        }
        if resources.memory_mb < 8 || resources.memory_mb > s.instance_max.memory_mb {
            let max = s.instance_max.memory_mb;
            return Err(Error::invalid(
                "memory_mb",
                format!("{} is not 8 to {max}", resources.memory_mb),
            ));
        }
        if let Some(image) = &request.image {
            ImageRef::parse(image).map_err(|e| Error::invalid("image", e))?;
        }
        if request.app_ports.contains(&s.ide.port) {
            let port = s.ide.port;
            return Err(Error::invalid("app_ports", format!("{port} is the IDE's port")));
        }
        let spec = InstanceSpec {
            image: request.image.clone(),
            resources,
            app_ports: request.app_ports.clone(),
            env: request.env.clone(),
            command: request.command.clone(),
            desired: Desired::Running,
            address: None,
            ide_port: None,
        };
        // Everything the runtime checks (ports, environment, limits), before anything exists.
        let max = runtime_resources(s.instance_max);
        self.runtime_spec(tenant, &name, &spec)?.validate(&max).map_err(runtime_error)?;
        Ok(Launch { name, spec })
    }

    pub(crate) fn runtime_spec(
        &self,
        tenant: &OwnerId,
        name: &DnsLabel,
        spec: &InstanceSpec,
    ) -> Result<kws_runtime::InstanceSpec, Error> {
        let mut out =
            kws_runtime::InstanceSpec::new(tenant.clone(), InstanceId::from(name.clone()));
        out.image = match &spec.image {
            Some(image) => Some(ImageRef::parse(image).map_err(|e| Error::invalid("image", e))?),
            None => self.settings().ide.image.clone(),
        };
        out.env = spec.env.clone();
        out.command = spec.command.clone();
        out.app_ports = spec.app_ports.clone();
        out.ide_port = Some(self.settings().ide.port);
        out.resources = Some(runtime_resources(spec.resources));
        Ok(out)
    }

    async fn launch_steps(
        &self,
        run: &Run,
        tenant: &OwnerId,
        launch: &Launch,
    ) -> Result<Object<InstanceSpec>, Error> {
        let runtime = self.runtime()?;
        let store = self.store();
        let op = Scope::Operator;
        let name = &launch.name;
        let claims = claims_of(launch.spec.resources);
        let unique = Some(hostname_key(name));
        let mut instance = run
            .step(
                "record",
                store.create(&op, tenant, name, unique, claims, &launch.spec, Some(run.id())),
            )
            .await?;
        let spec = self.runtime_spec(tenant, name, &launch.spec)?;
        let info = run
            .step("container", async { runtime.create(spec).await.map_err(runtime_error) })
            .await?;
        instance.spec.address = Some(info.address);
        instance.spec.ide_port = Some(info.ide_port);
        instance = store.update(&op, &instance).await?;
        // The new owner bridge is isolated before anything runs on it.
        run.step("firewall", self.apply_firewall()).await?;
        let key = InstanceKey::new(tenant.clone(), InstanceId::from(name.clone()));
        run.step("start", async { runtime.start(&key).await.map_err(runtime_error) }).await?;
        if let Some(route) = self.ide_route(&instance)? {
            let proxy = self.proxy();
            run.step("route", async { proxy.publish(route).await.map_err(proxy_error) }).await?;
        }
        run.step("observe", self.observe_instance(tenant, name)).await?;
        self.publish_object(tenant, &instance.meta, "created");
        store.get::<InstanceSpec>(&op, tenant, name.as_str()).await
    }

    /// Reads the instance from the engine and records what it saw (`missing` when the engine
    /// has no such instance; unknown when the engine cannot be asked).
    pub(crate) async fn observe_instance(
        &self,
        tenant: &OwnerId,
        name: &DnsLabel,
    ) -> Result<(), Error> {
        let key = InstanceKey::new(tenant.clone(), InstanceId::from(name.clone()));
        let seen = match self.runtime()?.inspect(&key).await {
            Ok(info) => Some(status_of(&info)),
            Err(kws_runtime::Error::NotFound { .. }) => Some(missing()),
            Err(e) => {
                tracing::warn!(%key, error = %e, "instance could not be observed");
                None
            }
        };
        self.record_instance_status(tenant, name, seen.as_ref(), Utc::now()).await
    }

    pub(crate) async fn record_instance_status(
        &self,
        tenant: &OwnerId,
        name: &DnsLabel,
        status: Option<&InstanceStatus>,
        at: chrono::DateTime<Utc>,
    ) -> Result<(), Error> {
        let store = self.store();
        let before = store.find::<InstanceSpec>(&Scope::Operator, tenant, name.as_str()).await?;
        let Some(before) = before else { return Ok(()) };
        let applied = store
            .observe::<InstanceSpec>(&Scope::Operator, tenant, name.as_str(), status, at)
            .await?;
        if applied && before.status.value.as_ref() != status {
            self.publish_object(tenant, &before.meta, "status");
        }
        Ok(())
    }

    /// Starts an instance (member role) and records that it should run.
    pub async fn start_instance(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
    ) -> Result<Object<InstanceSpec>, Error> {
        self.instance_action(scope, tenant, name, "start", Redeploy::default()).await
    }

    /// Stops an instance (member role) and records that it should stay stopped.
    pub async fn stop_instance(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
    ) -> Result<Object<InstanceSpec>, Error> {
        self.instance_action(scope, tenant, name, "stop", Redeploy::default()).await
    }

    /// Restarts an instance (member role).
    pub async fn restart_instance(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
    ) -> Result<Object<InstanceSpec>, Error> {
        self.instance_action(scope, tenant, name, "restart", Redeploy::default()).await
    }

    /// Replaces an instance's container with one of the changed spec, keeping its identity,
    /// workspace and address; when the new one does not start, the old one keeps running and
    /// the call fails.
    pub async fn redeploy_instance(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
        change: Redeploy,
    ) -> Result<Object<InstanceSpec>, Error> {
        self.act_on_instance(scope, tenant, name, "redeploy", change).await
    }

    /// Runs `action` (`start`, `stop`, `restart` or `redeploy`, with `change`) on the tenant's
    /// instance `name`, as the four methods above; `change.expected_version` makes it
    /// conditional on the instance's version.
    pub async fn act_on_instance(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
        action: &str,
        change: Redeploy,
    ) -> Result<Object<InstanceSpec>, Error> {
        if !["start", "stop", "restart", "redeploy"].contains(&action) {
            return Err(Error::invalid(
                "action",
                format!("{action:?} is not start, stop, restart or redeploy"),
            ));
        }
        if action != "redeploy" && (change.image.is_some() || change.env.is_some()) {
            return Err(Error::invalid("action", format!("{action} takes no image or env")));
        }
        if let Some(image) = &change.image {
            ImageRef::parse(image).map_err(|e| Error::invalid("image", e))?;
        }
        self.instance_action(scope, tenant, name, action, change).await
    }

    async fn instance_action(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
        action: &str,
        change: Redeploy,
    ) -> Result<Object<InstanceSpec>, Error> {
        scope.require(tenant, Role::Member)?;
        let name = parse_name("name", name)?;
        self.runtime()?;
        let instance = self.store().get::<InstanceSpec>(scope, tenant, name.as_str()).await?;
        check_version(&instance, change.expected_version)?;
        if let Some(env) = &change.env {
            let mut spec = instance.spec.clone();
            spec.env = env.clone();
            let max = runtime_resources(self.settings().instance_max);
            self.runtime_spec(tenant, &name, &spec)?.validate(&max).map_err(runtime_error)?;
        }
        let recorded = Action { name: name.clone(), action: action.to_owned(), change };
        let target = name.as_str();
        let begun = begin(self, scope, tenant, ACTION, target, None, &recorded, &recorded).await?;
        let run = match begun {
            Begin::New(run) => run,
            Begin::Existing(op) => return Err(ended_error(&op)),
        };
        let body = async {
            let instance = self.action_steps(&run, tenant, &recorded).await?;
            Ok((instance, serde_json::Value::Null))
        };
        finishing(&run, body).await
    }

    async fn action_steps(
        &self,
        run: &Run,
        tenant: &OwnerId,
        action: &Action,
    ) -> Result<Object<InstanceSpec>, Error> {
        let runtime = self.runtime()?;
        let store = self.store();
        let op = Scope::Operator;
        let name = &action.name;
        let key = InstanceKey::new(tenant.clone(), InstanceId::from(name.clone()));
        run.step("desired", async {
            let mut instance = store.get::<InstanceSpec>(&op, tenant, name.as_str()).await?;
            check_version(&instance, action.change.expected_version)?;
            let before = instance.spec.clone();
            match action.action.as_str() {
                "stop" => instance.spec.desired = Desired::Stopped,
                "redeploy" => {
                    instance.spec.desired = Desired::Running;
                    if let Some(image) = &action.change.image {
                        instance.spec.image = Some(image.clone());
                    }
                    if let Some(env) = &action.change.env {
                        instance.spec.env = env.clone();
                    }
                }
                _ => instance.spec.desired = Desired::Running,
            }
            if instance.spec != before {
                // Conditional on the version read (and checked) above: a change in between
                // is a Conflict.
                store.update(&op, &instance).await?;
            }
            Ok(())
        })
        .await?;
        run.step("engine", async {
            match action.action.as_str() {
                "start" => runtime.start(&key).await,
                "stop" => runtime.stop(&key, None).await,
                "restart" => runtime.restart(&key).await,
                _ => match action.change.image.as_deref().map(ImageRef::parse).transpose() {
                    Ok(image) => {
                        let env = action.change.env.clone();
                        let change = kws_runtime::Redeploy { image, env, command: None };
                        runtime.redeploy(&key, change).await.map(drop)
                    }
                    Err(e) => Err(e),
                },
            }
            .map_err(runtime_error)
        })
        .await?;
        run.step("observe", self.observe_instance(tenant, name)).await?;
        store.get::<InstanceSpec>(&op, tenant, name.as_str()).await
    }

    /// Removes an instance (member role): its apps, its IDE route, its container and address,
    /// its workspace (per the platform's policy), its network when it was the tenant's last
    /// instance, and its record.
    pub async fn remove_instance(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
    ) -> Result<(), Error> {
        scope.require(tenant, Role::Member)?;
        let name = parse_name("name", name)?;
        self.runtime()?;
        self.store().get::<InstanceSpec>(scope, tenant, name.as_str()).await?;
        let begun = begin(self, scope, tenant, REMOVE, name.as_str(), None, &name, &name).await?;
        let run = match begun {
            Begin::New(run) => run,
            Begin::Existing(op) => return Err(ended_error(&op)),
        };
        let body = async {
            self.remove_steps(&run, tenant, &name).await?;
            Ok(((), serde_json::Value::Null))
        };
        finishing(&run, body).await
    }

    async fn remove_steps(
        &self,
        run: &Run,
        tenant: &OwnerId,
        name: &DnsLabel,
    ) -> Result<(), Error> {
        let store = self.store();
        let op = Scope::Operator;
        run.step("mark", store.mark_removing::<InstanceSpec>(&op, tenant, name.as_str())).await?;
        run.step("apps", async {
            for app in store.list_all::<AppSpec>(&op, Some(tenant)).await? {
                if app.spec.instance.label() == name {
                    self.remove_app_everywhere(tenant, &app.meta.name).await?;
                }
            }
            Ok(())
        })
        .await?;
        run.step("route", self.unpublish_host(name)).await?;
        run.step("container", self.purge_instance(tenant, name)).await?;
        run.step("network", self.drop_network_if_unused(tenant)).await?;
        let removed =
            run.step("record", store.remove::<InstanceSpec>(&op, tenant, name.as_str())).await?;
        if let Some(instance) = removed {
            self.publish_object(tenant, &instance.meta, "deleted");
        }
        Ok(())
    }

    /// Takes the route of `<label>.<domain>` off the proxy (none is fine).
    pub(crate) async fn unpublish_host(&self, label: &DnsLabel) -> Result<(), Error> {
        let host = self.hostname(label)?;
        match self.proxy().unpublish(&host).await {
            Ok(()) | Err(kws_proxy::ProxyError::NotFound { .. }) => Ok(()),
            Err(e) => Err(proxy_error(e)),
        }
    }

    /// Every trace of the instance in the engine: container(s), leases, workspace per policy.
    pub(crate) async fn purge_instance(
        &self,
        tenant: &OwnerId,
        name: &DnsLabel,
    ) -> Result<(), Error> {
        let key = InstanceKey::new(tenant.clone(), InstanceId::from(name.clone()));
        let policy = self.settings().workspace_on_remove;
        self.runtime()?.purge(&key, policy).await.map(drop).map_err(runtime_error)
    }

    /// Removes the tenant's network when no instance of it is left in the engine, and takes
    /// its bridge out of the firewall.
    pub(crate) async fn drop_network_if_unused(&self, tenant: &OwnerId) -> Result<(), Error> {
        let runtime = self.runtime()?;
        let left = runtime.list(tenant).await.map_err(runtime_error)?;
        if left.is_empty() {
            match runtime.remove_network(tenant).await {
                Ok(_) | Err(kws_runtime::Error::InUse(_)) => {}
                Err(e) => return Err(runtime_error(e)),
            }
        }
        self.apply_firewall().await.map(drop)
    }
}

fn claims_of(resources: InstanceResources) -> Claims {
    Claims { cpu_millis: resources.cpu_millis, memory_mb: resources.memory_mb }
}

fn runtime_resources(r: InstanceResources) -> Resources {
    Resources {
        memory_bytes: i64::try_from(r.memory_mb.saturating_mul(1 << 20)).unwrap_or(i64::MAX),
        cpus: r.cpu_millis as f64 / 1000.0,
        pids: 1024,
    }
}

/// What the engine's view of an instance means for its status.
pub(crate) fn status_of(info: &InstanceInfo) -> InstanceStatus {
    let (state, exit_code) = match info.state {
        InstanceState::Created => (RunState::Created, None),
        InstanceState::Running => (RunState::Running, None),
        InstanceState::Paused => (RunState::Paused, None),
        InstanceState::Restarting => (RunState::Restarting, None),
        InstanceState::Exited { code } => (RunState::Exited, Some(code)),
        InstanceState::Removing => (RunState::Removing, None),
        _ => (RunState::Dead, None),
    };
    let health = info.health.map(|h| {
        match h {
            kws_runtime::Health::Starting => "starting",
            kws_runtime::Health::Healthy => "healthy",
            kws_runtime::Health::Unhealthy => "unhealthy",
        }
        .to_owned()
    });
    InstanceStatus {
        state,
        exit_code,
        health,
        container_id: Some(info.container_id.clone()),
        started_at: info.started_at,
    }
}

pub(crate) fn missing() -> InstanceStatus {
    InstanceStatus {
        state: RunState::Missing,
        exit_code: None,
        health: None,
        container_id: None,
        started_at: None,
    }
}

/// A runtime error as the Platform's.
pub(crate) fn runtime_error(e: kws_runtime::Error) -> Error {
    use kws_runtime::Error as R;
    match e {
        R::NotFound { owner, instance } => {
            Error::not_found("instance", format!("{owner}/{instance}"))
        }
        R::AlreadyExists { owner, instance } => {
            Error::AlreadyExists { kind: "instance", name: format!("{owner}/{instance}") }
        }
        R::InvalidName(e) => Error::invalid("name", e),
        R::InvalidSpec { field, value, reason } => {
            Error::invalid(spec_field(field), format!("{value}: {reason}"))
        }
        R::Forbidden(what) => Error::invalid("spec", format!("refused: {what}")),
        R::ImageNotFound(image) => Error::invalid("image", format!("{image} is not on the engine")),
        R::NotRunning { owner, instance } => Error::InUse {
            what: format!("instance {owner}/{instance}"),
            reason: "it is not running".to_owned(),
        },
        R::NoSubnet { range, .. } => Error::Exhausted(format!("the instance range {range}")),
        R::Address(kws_ipam::Error::Exhausted { .. }) => {
            Error::Exhausted("the tenant network's addresses".to_owned())
        }
        e => Error::backend("runtime", e),
    }
}

/// The runtime's field names as the Platform's request fields.
fn spec_field(field: &'static str) -> &'static str {
    match field {
        "env name" | "env value" => "env",
        "ports" => "app_ports",
        f if f.starts_with("resources") => "resources",
        f => f,
    }
}

pub(crate) fn proxy_error(e: kws_proxy::ProxyError) -> Error {
    use kws_proxy::ProxyError as P;
    match e {
        P::InvalidHost(e) => Error::invalid("name", e),
        e => Error::backend("proxy", e),
    }
}

/// Undoes one step of a launch.
pub(crate) fn undo_launch<'a>(
    platform: &'a Platform,
    op: &'a Operation,
    step: &'a str,
) -> BoxFuture<'a, Result<(), Error>> {
    Box::pin(async move {
        let launch = request_of::<Launch>(op)?;
        let tenant = &op.tenant;
        match step {
            "route" => platform.unpublish_host(&launch.name).await,
            "container" => {
                // Only a container of this operation's own record: the record step is the
                // only way to the name, so the engine's instance of it is ours.
                platform.purge_instance(tenant, &launch.name).await?;
                platform.drop_network_if_unused(tenant).await
            }
            "record" => platform.remove_own::<InstanceSpec>(op, launch.name.as_str()).await,
            _ => Ok(()),
        }
    })
}

/// Finishes an interrupted action.
pub(crate) fn rerun_action(platform: &Platform, run: Run) -> BoxFuture<'_, Result<(), Error>> {
    Box::pin(async move {
        let op = run.operation().await;
        let action = request_of::<Action>(&op)?;
        platform.action_steps(&run, &op.tenant, &action).await?;
        run.succeed(serde_json::Value::Null).await;
        Ok(())
    })
}

/// Finishes an interrupted remove.
pub(crate) fn rerun_remove(platform: &Platform, run: Run) -> BoxFuture<'_, Result<(), Error>> {
    Box::pin(async move {
        let op = run.operation().await;
        let name = request_of::<DnsLabel>(&op)?;
        platform.remove_steps(&run, &op.tenant, &name).await?;
        run.succeed(serde_json::Value::Null).await;
        Ok(())
    })
}

/// `Conflict` when `expected` is set and `instance` is at another version.
fn check_version(instance: &Object<InstanceSpec>, expected: Option<u64>) -> Result<(), Error> {
    match expected {
        Some(expected) if expected != instance.meta.version => Err(Error::Conflict {
            kind: "instance",
            name: format!("{}/{}", instance.meta.tenant, instance.meta.name),
            expected,
            actual: instance.meta.version,
        }),
        _ => Ok(()),
    }
}
