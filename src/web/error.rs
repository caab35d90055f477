//! What a page answers when something fails: a redirect to sign-in for a caller without a
//! session, else the error page with the status, the message and the request id. The status
//! and message come from the API's one table ([`ApiError`]), so a page and the API always
//! agree (another tenant's object is 404 on both).

use askama::Template;
use axum::{
    http::{StatusCode, Uri},
    response::{IntoResponse, Redirect, Response},
};

use super::view::{Frame, html};
use crate::http::ApiError;

/// A failed page.
#[derive(Debug)]
pub(crate) struct WebError(pub(crate) ApiError);

impl<E: Into<ApiError>> From<E> for WebError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    frame: Frame,
    status: u16,
    reason: &'static str,
    message: String,
    request_id: Option<String>,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let e = self.0;
        if e.status == StatusCode::UNAUTHORIZED {
            return Redirect::to("/login").into_response();
        }
        let page = ErrorPage {
            frame: Frame::bare(e.status.canonical_reason().unwrap_or("Error")),
            status: e.status.as_u16(),
            reason: e.status.canonical_reason().unwrap_or("Error"),
            message: e.message,
            request_id: crate::http::current_request_id(),
        };
        match html(&page) {
            Ok(mut response) => {
                *response.status_mut() = e.status;
                response
            }
            Err(_) => (e.status, "error").into_response(),
        }
    }
}

/// The page of a path nothing serves: 404.
pub(crate) async fn not_found(uri: Uri) -> WebError {
    WebError(ApiError::not_found(format!("page {}", uri.path())))
}
