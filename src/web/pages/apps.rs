//! Apps: the list with each URL and certificate state, publishing a port of an instance at
//! `<app>.<domain>`, and unpublishing.

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
    back, rendered_rows,
    rows::AppRow,
    see,
};
use crate::{
    http::{ApiError, AppState},
    platform::{PublishApp, model::InstanceSpec, store::PlatformStoreExt as _},
};

#[derive(Template)]
#[template(path = "apps.html")]
struct AppsPage {
    frame: Frame,
    tenant: String,
    domain: String,
    rows: Vec<String>,
    instances: Vec<String>,
    idempotency_key: String,
}

/// `GET /t/{tenant}/apps`.
pub(crate) async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
) -> Result<Response, WebError> {
    let (tenant, scope) = viewer.reads(&tenant)?;
    let store = state.platform().store();
    let domain = state.platform().settings().domain.to_string();
    let settings = state.platform().settings();
    let rows =
        rendered_rows(state.platform(), &scope, &tenant, |o| AppRow::of(o, settings)).await?;
    let instances = store
        .list_all::<InstanceSpec>(&scope, Some(&tenant))
        .await?
        .into_iter()
        .map(|o| o.meta.name.to_string())
        .collect();
    let page = AppsPage {
        frame: Frame::tenant(&viewer, &tenant, "/apps", "Apps"),
        tenant: tenant.to_string(),
        domain,
        rows,
        instances,
        idempotency_key: uuid::Uuid::now_v7().to_string(),
    };
    html(&page)
}

#[derive(Debug, Deserialize)]
pub(crate) struct NewApp {
    name: String,
    instance: String,
    port: String,
    /// Made with the form: posting the same form twice publishes once.
    #[serde(default)]
    idempotency_key: String,
}

/// `POST /t/{tenant}/apps`.
pub(crate) async fn publish(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Form(form): Form<NewApp>,
) -> Result<Response, WebError> {
    let (tenant, scope) = viewer.writes(&tenant)?;
    let port = form.port.trim().parse().map_err(|_| {
        WebError(ApiError::invalid("port", "port must be a number from 1 to 65535"))
    })?;
    let request = PublishApp { name: form.name.trim().to_owned(), instance: form.instance, port };
    let key = Some(form.idempotency_key).filter(|k| !k.is_empty());
    state.platform().publish_app(&scope, &tenant, request, key.as_deref()).await?;
    Ok(see(format!("/t/{tenant}/apps")))
}

/// `POST /t/{tenant}/apps/{name}/unpublish`.
pub(crate) async fn unpublish(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((tenant, name)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Result<Response, WebError> {
    let (tenant, scope) = viewer.writes(&tenant)?;
    state.platform().unpublish_app(&scope, &tenant, &name).await?;
    Ok(see(back(&headers, format!("/t/{tenant}/apps"))))
}
