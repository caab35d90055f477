//! One module per page (or group of pages), and the rows their lists share.

pub(crate) mod admin;
pub(crate) mod apps;
pub(crate) mod databases;
pub(crate) mod devices;
pub(crate) mod instances;
pub(crate) mod jobs;
pub(crate) mod login;
pub(crate) mod operations;
pub(crate) mod overview;
pub(crate) mod rows;

use askama::Template;
use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Redirect, Response},
};
use kws_core::OwnerId;

use super::error::WebError;
use crate::platform::{
    Platform, Scope,
    store::{Object, PlatformStoreExt as _, Resource},
};

/// Rows rendered to their HTML, for a list page.
pub(crate) fn render_all<T: Template>(rows: &[T]) -> Result<Vec<String>, WebError> {
    rows.iter()
        .map(|r| r.render().map_err(|e| WebError(crate::http::ApiError::internal(e))))
        .collect()
}

/// Every object of `S`'s kind in `tenant` that `scope` sees, each as the row `row` makes of
/// it, rendered.
pub(crate) async fn rendered_rows<S: Resource, R: Template>(
    platform: &Platform,
    scope: &Scope,
    tenant: &OwnerId,
    row: impl Fn(&Object<S>) -> R,
) -> Result<Vec<String>, WebError> {
    let objects = platform.store().list_all::<S>(scope, Some(tenant)).await?;
    render_all(&objects.iter().map(row).collect::<Vec<_>>())
}

/// `response`, which holds a secret shown once, marked so that no cache keeps it.
pub(crate) fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The page a form was posted from (its `Referer`, when that is this server), else
/// `fallback`: where an action's redirect goes back to.
pub(crate) fn back(headers: &axum::http::HeaderMap, fallback: String) -> String {
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok());
    let referer = headers.get(axum::http::header::REFERER).and_then(|h| h.to_str().ok());
    let path = referer.zip(host).and_then(|(r, host)| {
        let rest = r.strip_prefix("http://").or_else(|| r.strip_prefix("https://"))?;
        let rest = rest.strip_prefix(host)?;
        rest.starts_with('/').then(|| rest.to_owned())
    });
    path.filter(|p| !p.starts_with("//")).unwrap_or(fallback)
}

/// After a form: 303 to the page `to`, so a reload does not post again.
pub(crate) fn see(to: impl AsRef<str>) -> Response {
    Redirect::to(to.as_ref()).into_response()
}
