//! `/`: to the caller's tenant; `/t/{tenant}`: the overview of its objects and quota use.

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    response::Response,
};
use serde::Deserialize;

use super::{
    super::{
        error::WebError,
        forms::{Viewer, encode},
        view::{Frame, html},
    },
    render_all,
    rows::{AppRow, DatabaseRow, DeviceRow, InstanceRow},
    see,
};
use crate::{
    http::AppState,
    platform::{
        Scope,
        model::{AppSpec, DatabaseSpec, DeviceSpec, InstanceSpec},
        store::PlatformStoreExt as _,
    },
};

/// `?tenant=` of the tenant switch.
#[derive(Debug, Deserialize)]
pub(crate) struct Switch {
    #[serde(default)]
    tenant: Option<String>,
}

/// `GET /`: the tenant asked for, else the caller's first tenant, else (an operator in no
/// tenant) the admin page.
pub(crate) async fn home(
    viewer: Viewer,
    Query(switch): Query<Switch>,
) -> Result<Response, WebError> {
    if let Some(t) = switch.tenant.filter(|t| !t.is_empty()) {
        return Ok(see(format!("/t/{}", encode(&t))));
    }
    match viewer.0.scopes.iter().find_map(Scope::confined_to) {
        Some(tenant) => Ok(see(format!("/t/{tenant}"))),
        None if viewer.0.is_operator() => Ok(see("/admin")),
        None => Err(WebError(crate::http::ApiError::not_found("a tenant you are a member of"))),
    }
}

/// How many objects of each kind the overview lists (the sections' own pages list them all):
/// the overview weighs the same however many a tenant has.
const SHOWN: usize = 10;

/// One kind's rows on the overview: the first [`SHOWN`], and how many more there are.
pub(crate) struct Section {
    rows: Vec<String>,
    more: usize,
}

fn section<T: Template>(rows: &[T]) -> Result<Section, WebError> {
    let shown = rows.len().min(SHOWN);
    Ok(Section { rows: render_all(&rows[..shown])?, more: rows.len() - shown })
}

/// One line of the quota table.
pub(crate) struct QuotaLine {
    label: &'static str,
    used: String,
    limit: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    frame: Frame,
    tenant: String,
    display_name: String,
    quotas: Vec<QuotaLine>,
    instances: Section,
    devices: Section,
    apps: Section,
    databases: Section,
}

fn line(label: &'static str, used: u64, limit: Option<u64>, unit: &str) -> QuotaLine {
    QuotaLine {
        label,
        used: format!("{used}{unit}"),
        limit: limit.map_or_else(|| "unlimited".into(), |l| format!("{l}{unit}")),
    }
}

/// `GET /t/{tenant}`.
pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
) -> Result<Response, WebError> {
    let (tenant, scope) = viewer.reads(&tenant)?;
    let store = state.platform().store();
    let record = store.get_tenant(&scope, &tenant).await?;
    let usage = store.usage(&scope, &tenant).await?;
    let q = record.quotas;
    let t = Some(&tenant);
    let instances: Vec<_> =
        store.list_all::<InstanceSpec>(&scope, t).await?.iter().map(InstanceRow::of).collect();
    let devices: Vec<_> =
        store.list_all::<DeviceSpec>(&scope, t).await?.iter().map(DeviceRow::of).collect();
    let apps: Vec<_> = store
        .list_all::<AppSpec>(&scope, t)
        .await?
        .iter()
        .map(|o| AppRow::of(o, state.platform().settings()))
        .collect();
    let databases: Vec<_> =
        store.list_all::<DatabaseSpec>(&scope, t).await?.iter().map(DatabaseRow::of).collect();
    let page = Overview {
        frame: Frame::tenant(&viewer, &tenant, "", "Overview"),
        tenant: tenant.to_string(),
        display_name: record.display_name,
        quotas: vec![
            line("Instances", usage.instances, q.instances, ""),
            line("CPU", usage.cpu_millis, q.cpu_millis, " mCPU"),
            line("Memory", usage.memory_mb, q.memory_mb, " MB"),
            line("VPN devices", usage.devices, q.devices, ""),
            line("Apps", usage.apps, q.apps, ""),
            line("Databases", usage.databases, q.databases, ""),
        ],
        instances: section(&instances)?,
        devices: section(&devices)?,
        apps: section(&apps)?,
        databases: section(&databases)?,
    };
    html(&page)
}
