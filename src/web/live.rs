//! `GET /t/{tenant}/live`: the tenant's changes as rendered rows, so a page updates without
//! reloading. Each platform event about an object becomes `swap` `{id, list, html}` (the
//! row as the list page renders it: replace the element `id`, or add it to the list `list`)
//! or `remove` `{id}`; an operation's event swaps its row on the operations page. Resumes
//! after `Last-Event-ID`; a gap in the stream is `reload` (the page reloads to be sure).

use askama::Template as _;
use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::sse::Event,
    response::{IntoResponse, Response},
};
use futures::StreamExt as _;
use kws_core::OwnerId;
use serde_json::json;

use super::{
    error::WebError,
    forms::Viewer,
    pages::rows::{OperationRow, Rendered, render_object, row_id},
};
use crate::{
    http::{
        AppState,
        sse::{self, event},
    },
    platform::{EventBody, Platform, PlatformEvent, Role, Scope, store::Kind},
};

/// `GET /t/{tenant}/live`.
pub(crate) async fn stream(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let (tenant, scope) = viewer.reads(&tenant)?;
    let platform = state.platform().clone();
    platform.store().get_tenant(&scope, &tenant).await?;
    let after = sse::resume_after(&headers, None);
    // Only this tenant's events, even for an operator.
    let events = platform.events().subscribe(Scope::tenant(tenant.clone(), Role::Viewer), after);
    let rendered = events.then(move |item| {
        let (platform, scope, tenant) = (platform.clone(), scope.clone(), tenant.clone());
        async move {
            match item {
                Ok(e) => render(&platform, &scope, &tenant, &e).await,
                Err(_) => Some(event("reload", None, &json!({}))),
            }
        }
    });
    let events = rendered.filter_map(std::future::ready);
    Ok(sse::stream(&state, events).into_response())
}

/// The SSE event of one platform event, or `None` when no row shows it.
async fn render(
    platform: &Platform,
    scope: &Scope,
    tenant: &OwnerId,
    e: &PlatformEvent,
) -> Option<Event> {
    let id = Some(e.seq);
    match &e.body {
        EventBody::Object { kind, name, change } => {
            if *change == "deleted" {
                return Some(event("remove", id, &json!({"id": row_id(*kind, name)})));
            }
            row_event(platform, scope, tenant, *kind, name, id).await
        }
        EventBody::Device { name, .. } => {
            row_event(platform, scope, tenant, Kind::Device, name, id).await
        }
        EventBody::Job { id: job, .. } => {
            row_event(platform, scope, tenant, Kind::Job, job, id).await
        }
        EventBody::Operation { id: op, .. } => {
            let op = platform.store().get_operation(scope, *op).await.ok()?;
            let html = OperationRow::of(&op).render().ok()?;
            let row = Rendered { id: format!("operation-{}", op.id), list: "operation", html };
            Some(event("swap", id, &row))
        }
    }
}

async fn row_event(
    platform: &Platform,
    scope: &Scope,
    tenant: &OwnerId,
    kind: Kind,
    name: &str,
    id: Option<u64>,
) -> Option<Event> {
    match render_object(platform, scope, tenant, kind, name).await {
        Ok(Some(row)) => Some(event("swap", id, &row)),
        Ok(None) => Some(event("remove", id, &json!({"id": row_id(kind, name)}))),
        Err(e) => {
            tracing::warn!(error = %e, "a live row could not be rendered");
            None
        }
    }
}
