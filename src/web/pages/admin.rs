//! The operators' page: host status (the last reconcile pass, the code-execution engine)
//! and every tenant with its members and quotas. Anyone else gets 404, as for a page that
//! does not exist.

use askama::Template;
use axum::{
    extract::{Path, State},
    response::Response,
};
use std::collections::HashMap;

use super::{
    super::{
        error::WebError,
        forms::{Form, Viewer, optional_number},
        view::{Frame, html, when},
    },
    see,
};
use crate::{
    http::{ApiError, AppState},
    platform::{Scope, store::Quotas},
};

/// The quota fields: form name and label.
const QUOTAS: [(&str, &str); 6] = [
    ("instances", "Instances"),
    ("cpu_millis", "CPU (mCPU)"),
    ("memory_mb", "Memory (MB)"),
    ("devices", "VPN devices"),
    ("apps", "Apps"),
    ("databases", "Databases"),
];

fn quota_values(q: &Quotas) -> [Option<u64>; 6] {
    [q.instances, q.cpu_millis, q.memory_mb, q.devices, q.apps, q.databases]
}

/// A tenant as the page shows it.
pub(crate) struct TenantView {
    id: String,
    display_name: String,
    version: u64,
    members: Vec<String>,
    /// (field, label, value or "").
    quotas: Vec<(&'static str, &'static str, String)>,
}

/// The last reconcile pass.
pub(crate) struct ReconcileView {
    at: String,
    took: String,
    facts: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    frame: Frame,
    reconcile: Option<ReconcileView>,
    exec: String,
    tenants: Vec<TenantView>,
}

fn operator(viewer: &Viewer) -> Result<Scope, WebError> {
    if viewer.0.is_operator() {
        Ok(Scope::Operator)
    } else {
        Err(WebError(ApiError::not_found("page /admin")))
    }
}

/// `GET /admin`.
pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, WebError> {
    let scope = operator(&viewer)?;
    let platform = state.platform();
    let store = platform.store();
    let mut tenants = Vec::new();
    for t in store.list_tenants(&scope).await? {
        let members = store
            .members(&scope, &t.id)
            .await?
            .into_iter()
            .map(|m| format!("{} ({})", m.user, m.role.as_str()))
            .collect();
        let values = quota_values(&t.quotas);
        let quotas = QUOTAS
            .iter()
            .zip(values)
            .map(|((field, label), v)| {
                (*field, *label, v.map(|v| v.to_string()).unwrap_or_default())
            })
            .collect();
        tenants.push(TenantView {
            id: t.id.to_string(),
            display_name: t.display_name,
            version: t.version,
            members,
            quotas,
        });
    }
    let reconcile = platform.last_reconcile().map(|r| ReconcileView {
        at: when(Some(r.at)),
        took: format!("{:.1} ms", r.took_ms),
        facts: vec![
            ("Removals finished", r.removals_finished.len().to_string()),
            ("Devices lost", r.devices_lost.len().to_string()),
            ("Devices expired", r.devices_expired.len().to_string()),
            ("Stray peers removed", r.peers_removed.len().to_string()),
            ("Interface configured", r.interface_configured.to_string()),
            ("Peers put on the interface", r.interface_added.len().to_string()),
            ("Peers taken off the interface", r.interface_removed.len().to_string()),
        ],
    });
    let exec = match platform.exec() {
        Ok(exec) => {
            let languages: Vec<_> = exec.languages().iter().map(ToString::to_string).collect();
            format!("Languages: {}.", languages.join(", "))
        }
        Err(e) => e.to_string(),
    };
    let page = AdminPage { frame: Frame::signed_in(&viewer, "Admin"), reconcile, exec, tenants };
    html(&page)
}

/// `POST /admin/tenants/{tenant}/quotas`: every quota field (empty: unlimited), at the
/// version the page showed (a stale one is 409).
pub(crate) async fn set_quotas(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let scope = operator(&viewer)?;
    let tenant = kws_core::OwnerId::parse(&tenant)
        .map_err(|e| WebError(ApiError::invalid("tenant", format!("invalid tenant: {e}"))))?;
    let field =
        |name: &'static str| optional_number(name, form.get(name).map_or("", String::as_str));
    let version = field("version")?
        .ok_or_else(|| WebError(ApiError::invalid("version", "the form has no version")))?;
    let quotas = Quotas {
        instances: field("instances")?,
        cpu_millis: field("cpu_millis")?,
        memory_mb: field("memory_mb")?,
        devices: field("devices")?,
        apps: field("apps")?,
        databases: field("databases")?,
    };
    state.platform().set_quotas(&scope, &tenant, version, quotas).await?;
    Ok(see("/admin"))
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct NewTenant {
    id: String,
    display_name: String,
}

/// `POST /admin/tenants`: a tenant with the platform's default quotas.
pub(crate) async fn create_tenant(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<NewTenant>,
) -> Result<Response, WebError> {
    let scope = operator(&viewer)?;
    let id = kws_core::OwnerId::parse(form.id.trim())
        .map_err(|e| WebError(ApiError::invalid("id", format!("invalid tenant id: {e}"))))?;
    state.platform().create_tenant(&scope, id, form.display_name.trim(), None).await?;
    Ok(see("/admin"))
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct NewUser {
    name: String,
    display_name: String,
    password: String,
    #[serde(default)]
    operator: Option<String>,
}

/// `POST /admin/users`: a user with a password (an operator when the box is ticked); the
/// user is not made when the password is refused.
pub(crate) async fn create_user(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<NewUser>,
) -> Result<Response, WebError> {
    let scope = operator(&viewer)?;
    let platform = state.platform();
    let operator = form.operator.is_some();
    let user =
        platform.create_user(&scope, form.name.trim(), form.display_name.trim(), operator).await?;
    let password = kws_accounts::Secret::new(form.password);
    if let Err(e) = state.accounts().set_password(&user.name, &password).await {
        platform.store().delete_user(&scope, &user.name).await?;
        return Err(e.into());
    }
    Ok(see("/admin"))
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct NewMember {
    user: String,
    role: String,
}

/// `POST /admin/tenants/{tenant}/members`: makes a user a member with a role (or changes
/// the role).
pub(crate) async fn set_member(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Form(form): Form<NewMember>,
) -> Result<Response, WebError> {
    let scope = operator(&viewer)?;
    let tenant = kws_core::OwnerId::parse(&tenant)
        .map_err(|e| WebError(ApiError::invalid("tenant", format!("invalid tenant: {e}"))))?;
    let role = crate::platform::Role::parse(&form.role)?;
    state.platform().set_member(&scope, &tenant, form.user.trim(), role).await?;
    Ok(see("/admin"))
}
