//! Databases: the list, creating one and rotating its password (the credentials shown once,
//! on the answer to the form), and dropping it.

use askama::Template;
use axum::{
    extract::{Path, State},
    response::Response,
};
use serde::Deserialize;

use super::{
    super::{
        error::WebError,
        forms::{Form, Viewer},
        view::{Frame, html},
    },
    back, no_store, rendered_rows,
    rows::DatabaseRow,
    see,
};
use crate::{
    http::AppState,
    platform::{DatabaseCreated, Scope},
};

/// Credentials made now: what the page shows once.
pub(crate) struct Shown {
    name: String,
    host: String,
    port: u16,
    database: String,
    role: String,
    password: String,
    url: String,
}

impl Shown {
    fn of(made: &DatabaseCreated) -> Option<Self> {
        made.credentials.as_ref().map(|c| Shown {
            name: made.database.meta.name.to_string(),
            host: c.host.clone(),
            port: c.port,
            database: c.database.clone(),
            role: c.role.clone(),
            password: c.password.expose().to_owned(),
            url: c.url(),
        })
    }
}

#[derive(Template)]
#[template(path = "databases.html")]
struct DatabasesPage {
    frame: Frame,
    tenant: String,
    rows: Vec<String>,
    credentials: Option<Shown>,
}

async fn page(
    state: &AppState,
    viewer: &Viewer,
    tenant: &kws_core::OwnerId,
    scope: &Scope,
    credentials: Option<Shown>,
) -> Result<Response, WebError> {
    let secret = credentials.is_some();
    let page = DatabasesPage {
        frame: Frame::tenant(viewer, tenant, "/databases", "Databases"),
        tenant: tenant.to_string(),
        rows: rendered_rows(state.platform(), scope, tenant, DatabaseRow::of).await?,
        credentials,
    };
    let response = html(&page)?;
    Ok(if secret { no_store(response) } else { response })
}

/// `GET /t/{tenant}/databases`.
pub(crate) async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
) -> Result<Response, WebError> {
    let (tenant, scope) = viewer.reads(&tenant)?;
    page(&state, &viewer, &tenant, &scope, None).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct NewDatabase {
    name: String,
}

/// `POST /t/{tenant}/databases`: creates it and answers the page with its credentials.
pub(crate) async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Form(form): Form<NewDatabase>,
) -> Result<Response, WebError> {
    let (tenant, scope) = viewer.writes(&tenant)?;
    let made = state.platform().create_database(&scope, &tenant, form.name.trim(), None).await?;
    page(&state, &viewer, &tenant, &scope, Shown::of(&made)).await
}

/// `POST /t/{tenant}/databases/{name}/rotate`: a new password, shown once.
pub(crate) async fn rotate(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let (tenant, scope) = viewer.writes(&tenant)?;
    let made = state.platform().rotate_database_password(&scope, &tenant, &name).await?;
    page(&state, &viewer, &tenant, &scope, Shown::of(&made)).await
}

/// `POST /t/{tenant}/databases/{name}/drop`.
pub(crate) async fn drop(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((tenant, name)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Result<Response, WebError> {
    let (tenant, scope) = viewer.writes(&tenant)?;
    state.platform().drop_database(&scope, &tenant, &name).await?;
    Ok(see(back(&headers, format!("/t/{tenant}/databases"))))
}
