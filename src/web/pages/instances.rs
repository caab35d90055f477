//! Instances: the list and the launch form, one instance's page (state, IDE link, CPU and
//! memory, logs, redeploy), and the actions.

use std::time::Duration;

use askama::Template;
use axum::{
    extract::{Path, State},
    response::Response,
};
use futures::StreamExt as _;
use kws_runtime::LogOptions;
use serde::Deserialize;

use super::{
    super::{
        error::WebError,
        forms::{Form, Viewer, optional, optional_number},
        view::{Frame, bytes, html},
    },
    back, rendered_rows,
    rows::InstanceRow,
    see,
};
use crate::{
    http::{ApiError, AppState},
    platform::{
        LaunchInstance, Redeploy,
        model::{InstanceSpec, RunState},
        store::PlatformStoreExt as _,
    },
};

#[derive(Template)]
#[template(path = "instances.html")]
struct InstancesPage {
    frame: Frame,
    tenant: String,
    rows: Vec<String>,
    default_cpu: u64,
    default_memory: u64,
}

/// `GET /t/{tenant}/instances`.
pub(crate) async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
) -> Result<Response, WebError> {
    let (tenant, scope) = viewer.reads(&tenant)?;
    let platform = state.platform();
    let rows = rendered_rows(platform, &scope, &tenant, InstanceRow::of).await?;
    let defaults = platform.settings().instance_defaults;
    let page = InstancesPage {
        frame: Frame::tenant(&viewer, &tenant, "/instances", "Instances"),
        tenant: tenant.to_string(),
        rows,
        default_cpu: defaults.cpu_millis,
        default_memory: defaults.memory_mb,
    };
    html(&page)
}

/// The launch form.
#[derive(Debug, Deserialize)]
pub(crate) struct NewInstance {
    name: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    cpu_millis: String,
    #[serde(default)]
    memory_mb: String,
}

/// `POST /t/{tenant}/instances`: launches, then to the instance's page.
pub(crate) async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Form(form): Form<NewInstance>,
) -> Result<Response, WebError> {
    let (tenant, scope) = viewer.writes(&tenant)?;
    let mut request = LaunchInstance::named(form.name.trim())?;
    request.image = optional(&form.image);
    request.cpu_millis = optional_number("cpu_millis", &form.cpu_millis)?;
    request.memory_mb = optional_number("memory_mb", &form.memory_mb)?;
    let made = state.platform().launch_instance(&scope, &tenant, request, None).await?;
    Ok(see(format!("/t/{tenant}/instances/{}", made.meta.name)))
}

#[derive(Template)]
#[template(path = "instance.html")]
struct InstancePage {
    frame: Frame,
    row: InstanceRow,
    row_html: String,
    ide_url: Option<String>,
    stats_now: String,
    logs: Vec<String>,
    logs_unavailable: Option<String>,
    /// How many past lines the page shows (and the live stream starts with).
    tail: u32,
}

/// How many past lines the page shows.
const LOG_TAIL: u32 = 200;
/// How long the page waits for the engine's past lines.
const LOG_WAIT: Duration = Duration::from_secs(2);

/// `GET /t/{tenant}/instances/{name}`.
pub(crate) async fn detail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let (tenant, scope) = viewer.reads(&tenant)?;
    let platform = state.platform();
    let object = platform.store().get::<InstanceSpec>(&scope, &tenant, &name).await?;
    let row = InstanceRow::of(&object);
    let running = object.status.value.as_ref().is_some_and(|s| s.state == RunState::Running);
    let ide_url = object.spec.ide_port.map(|_| format!("/ide/{name}"));
    let stats_now = if running {
        match platform.instance_stats(&scope, &tenant, &name).await {
            Ok(s) => format!(
                "CPU {:.1}%, memory {} of {}, {} processes",
                s.cpu_percent,
                bytes(s.memory_bytes),
                bytes(s.memory_limit_bytes),
                s.pids
            ),
            Err(e) => format!("No sample: {e}"),
        }
    } else {
        "Not running.".into()
    };
    let (logs, logs_unavailable) = past_logs(&state, &scope, &tenant, &name).await;
    let page = InstancePage {
        frame: Frame::tenant(&viewer, &tenant, "/instances", &format!("Instance {name}")),
        row_html: row.render().map_err(|e| WebError(ApiError::internal(e)))?,
        row,
        ide_url,
        stats_now,
        logs,
        logs_unavailable,
        tail: LOG_TAIL,
    };
    html(&page)
}

/// `GET /ide/{name}`: into the IDE of the instance `name` of a tenant the viewer is a member
/// of, through a one-time ticket for its host (see `crate::gate`); 404 for any other.
pub(crate) async fn open_ide(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    let platform = state.platform();
    let caller = &viewer.0;
    let instance = platform.member_instance(&caller.user, &name).await?;
    let Some(instance) = instance.filter(|i| i.spec.ide_port.is_some()) else {
        return Err(WebError(ApiError::not_found(format!("the IDE of instance {name}"))));
    };
    let settings = platform.settings();
    let name = instance.meta.name.as_str();
    let who = kws_accounts::Authenticated { user: caller.user.clone(), via: caller.via.clone() };
    let host = format!("{name}.{}", settings.domain);
    let ticket = state.accounts().issue_ticket(&who, &host).await?;
    let path = format!("/_kws/enter?ticket={}", ticket.secret.expose());
    Ok(see(settings.public_url(name, &path)))
}

/// The instance's last lines, or why there are none.
async fn past_logs(
    state: &AppState,
    scope: &crate::platform::Scope,
    tenant: &kws_core::OwnerId,
    name: &str,
) -> (Vec<String>, Option<String>) {
    let options = LogOptions { follow: false, tail: Some(LOG_TAIL) };
    let stream = match state.platform().instance_logs(scope, tenant, name, options).await {
        Ok(stream) => stream,
        Err(e) => return (Vec::new(), Some(e.to_string())),
    };
    let lines = stream.take(LOG_TAIL as usize).collect::<Vec<_>>();
    match tokio::time::timeout(LOG_WAIT, lines).await {
        Ok(lines) => (lines.into_iter().filter_map(Result::ok).map(|l| l.text).collect(), None),
        Err(_) => (Vec::new(), Some("The engine did not answer in time.".into())),
    }
}

/// The redeploy form (the only action with fields).
#[derive(Debug, Deserialize)]
pub(crate) struct Action {
    #[serde(default)]
    image: String,
}

/// `POST /t/{tenant}/instances/{name}/{action}`: `start`, `stop`, `restart`, `redeploy`
/// (with an optional new image) or `remove`; then back to the page the form was on.
pub(crate) async fn act(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((tenant, name, action)): Path<(String, String, String)>,
    headers: axum::http::HeaderMap,
    Form(form): Form<Action>,
) -> Result<Response, WebError> {
    let (tenant, scope) = viewer.writes(&tenant)?;
    let platform = state.platform();
    if action == "remove" {
        platform.remove_instance(&scope, &tenant, &name).await?;
        return Ok(see(format!("/t/{tenant}/instances")));
    }
    let change = Redeploy { image: optional(&form.image), ..Redeploy::default() };
    platform.act_on_instance(&scope, &tenant, &name, &action, change).await?;
    Ok(see(back(&headers, format!("/t/{tenant}/instances/{name}"))))
}
