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
        view::{Frame, bytes, html, when},
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

/// A user: who, its roles, its tokens.
pub(crate) struct UserView {
    name: String,
    display_name: String,
    operator: bool,
    roles: Vec<String>,
    tokens: Vec<TokenView>,
}

/// One API token of a user.
pub(crate) struct TokenView {
    id: String,
    name: String,
    scopes: String,
    expires: String,
    revoked: bool,
}

/// One line of a host-status table.
pub(crate) struct Line {
    what: String,
    state: String,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    frame: Frame,
    reconcile: Option<ReconcileView>,
    exec: String,
    pools: Vec<Line>,
    addresses: Vec<Line>,
    interface: Vec<Line>,
    tenants: Vec<TenantView>,
    users: Vec<UserView>,
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
    let (exec, pools) = match platform.exec() {
        Ok(exec) => {
            let pools = exec
                .pools()
                .into_iter()
                .map(|(language, p)| Line {
                    what: language.to_string(),
                    state: format!(
                        "{} ready of {}, {} busy, {} starting, {} queued; {} reused, {} retired",
                        p.ready, p.target, p.busy, p.starting, p.queued, p.reused, p.retired
                    ),
                })
                .collect();
            ("Sandboxes in warm pools, one per language.".to_owned(), pools)
        }
        Err(e) => (e.to_string(), Vec::new()),
    };
    let page = AdminPage {
        frame: Frame::signed_in(&viewer, "Admin"),
        reconcile,
        exec,
        pools,
        addresses: addresses(platform).await,
        interface: interface(platform).await,
        tenants,
        users: users(&state, &scope).await?,
    };
    html(&page)
}

/// The VPN's address pools: how much of each is leased.
async fn addresses(platform: &crate::platform::Platform) -> Vec<Line> {
    let mut lines = Vec::new();
    for spec in platform.vpn().settings().pool_specs() {
        let state = match platform.allocator().usage(&spec.name).await {
            Ok(u) => format!(
                "{} of {} leased ({} free), {}",
                u.allocated, u.capacity, u.free, spec.prefix
            ),
            Err(e) => format!("unknown: {e}"),
        };
        lines.push(Line { what: spec.name.to_string(), state });
    }
    lines
}

/// The WireGuard interface as the kernel (or wireguard-go) reports it.
async fn interface(platform: &crate::platform::Platform) -> Vec<Line> {
    let device = platform.vpn().device();
    let name = device.interface().to_string();
    match device.get().await {
        Ok(d) => {
            let shaken = d.peers.iter().filter(|p| p.last_handshake.is_some()).count();
            let (rx, tx) =
                d.peers.iter().fold((0, 0), |(r, t), p| (r + p.rx_bytes, t + p.tx_bytes));
            vec![
                Line { what: "Interface".into(), state: name },
                Line {
                    what: "Public key".into(),
                    state: d.public_key.map_or_else(|| "none yet".into(), |k| k.to_string()),
                },
                Line { what: "Listen port".into(), state: d.listen_port.to_string() },
                Line {
                    what: "Peers".into(),
                    state: format!("{} ({shaken} with a handshake)", d.peers.len()),
                },
                Line {
                    what: "Traffic".into(),
                    state: format!("{} in, {} out", bytes(rx), bytes(tx)),
                },
            ]
        }
        Err(e) => {
            vec![Line { what: format!("Interface {name}"), state: format!("unreadable: {e}") }]
        }
    }
}

/// Every user, with its roles and API tokens.
async fn users(state: &AppState, scope: &Scope) -> Result<Vec<UserView>, WebError> {
    let store = state.platform().store();
    let mut out = Vec::new();
    for user in store.list_users(scope).await? {
        let roles = store
            .memberships(scope, &user.name)
            .await?
            .into_iter()
            .map(|m| format!("{} in {}", m.role.as_str(), m.tenant))
            .collect();
        let tokens = state
            .accounts()
            .tokens(&user.name)
            .await?
            .into_iter()
            .map(|t| TokenView {
                id: t.id.to_string(),
                name: t.name,
                scopes: t.scopes.names().join(", "),
                expires: t.expires_at.map_or_else(|| "never".into(), |at| when(Some(at))),
                revoked: t.revoked_at.is_some(),
            })
            .collect();
        out.push(UserView {
            name: user.name.to_string(),
            display_name: user.display_name,
            operator: user.operator,
            roles,
            tokens,
        });
    }
    Ok(out)
}

/// `POST /admin/users/{user}/tokens/{id}/revoke`: the token stops working at once.
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((user, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    operator(&viewer)?;
    let user = kws_core::DnsLabel::parse(&user)
        .map_err(|e| WebError(ApiError::invalid("user", format!("invalid user: {e}"))))?;
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| WebError(ApiError::invalid("id", "not a token id")))?;
    state.accounts().revoke_token(&user, id).await?;
    Ok(see("/admin"))
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
