//! The tenant's operations: newest first, with their steps and compensations.

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    response::Response,
};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    super::{
        error::WebError,
        forms::Viewer,
        view::{Frame, html},
    },
    render_all,
    rows::OperationRow,
};
use crate::http::AppState;

/// How many operations a page shows.
const PAGE: usize = 50;

#[derive(Template)]
#[template(path = "operations.html")]
struct OperationsPage {
    frame: Frame,
    tenant: String,
    rows: Vec<String>,
    older: Option<Uuid>,
}

/// `?before=<id>`: the page after the operation `id`.
#[derive(Debug, Deserialize)]
pub(crate) struct Before {
    #[serde(default)]
    before: Option<String>,
}

/// `GET /t/{tenant}/operations`.
pub(crate) async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Query(before): Query<Before>,
) -> Result<Response, WebError> {
    let (tenant, scope) = viewer.reads(&tenant)?;
    let before = match before.before.as_deref().filter(|b| !b.is_empty()) {
        None => None,
        Some(raw) => Some(Uuid::parse_str(raw).map_err(|_| {
            WebError(crate::http::ApiError::invalid("before", "before is not an operation id"))
        })?),
    };
    let store = state.platform().store();
    let ops = store.list_operations(&scope, Some(&tenant), before, PAGE).await?;
    let older = (ops.len() == PAGE).then(|| ops.last().map(|o| o.id)).flatten();
    let rows: Vec<_> = ops.iter().map(OperationRow::of).collect();
    let page = OperationsPage {
        frame: Frame::tenant(&viewer, &tenant, "/operations", "Operations"),
        tenant: tenant.to_string(),
        rows: render_all(&rows)?,
        older,
    };
    html(&page)
}
