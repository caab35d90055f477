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
use axum::response::{IntoResponse, Redirect, Response};

use super::error::WebError;

/// Rows rendered to their HTML, for a list page.
pub(crate) fn render_all<T: Template>(rows: &[T]) -> Result<Vec<String>, WebError> {
    rows.iter()
        .map(|r| r.render().map_err(|e| WebError(crate::http::ApiError::internal(e))))
        .collect()
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
