//! Extractors whose rejections are the API's JSON errors: a body, path parameters, a query,
//! and the `Idempotency-Key` header.

use axum::{
    extract::{FromRequest, FromRequestParts, Request, rejection::JsonRejection},
    http::{StatusCode, request::Parts},
};
use serde::de::DeserializeOwned;

use crate::http::{ApiError, ErrorCode};

/// A JSON body: malformed JSON or a wrong shape is 400 `malformed_body` (naming the field
/// serde names), a body over the limit 413, a missing `Content-Type` 415 as 400.
#[derive(Debug)]
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(e) => Err(body_error(&e)),
        }
    }
}

fn body_error(e: &JsonRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            "the body is larger than this server takes",
        );
    }
    let mut out = ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::MalformedBody, e.body_text());
    if let JsonRejection::JsonDataError(data) = e {
        // serde_path_to_error names the field first: "field: message".
        let text = data.body_text();
        if let Some((_, rest)) = text.split_once(": ") {
            if let Some((field, _)) = rest.split_once(':') {
                if !field.contains(' ') {
                    out.field = Some(field.to_owned());
                }
            }
        }
    }
    out
}

/// The `Idempotency-Key` header, if sent (the Platform checks its form).
#[derive(Debug)]
pub(crate) struct IdempotencyKey(pub(crate) Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.headers.get("idempotency-key") {
            None => Ok(IdempotencyKey(None)),
            Some(v) => match v.to_str() {
                Ok(key) => Ok(IdempotencyKey(Some(key.to_owned()))),
                Err(_) => Err(ApiError::invalid("Idempotency-Key", "the key is not visible ASCII")),
            },
        }
    }
}

/// A query string: a wrong one is 400 naming the parameter when serde does.
#[derive(Debug)]
pub(crate) struct Query<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => {
                Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::Invalid, e.body_text()))
            }
        }
    }
}

/// Path parameters: a wrong count or shape is 400 (never a plain-text rejection).
#[derive(Debug)]
pub(crate) struct Path<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e) => {
                Err(ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::Invalid, e.body_text()))
            }
        }
    }
}

/// The `If-Match` header: the version (`"N"`, as `ETag` gives it) an update is made against.
/// `*` or no header is `None`; a malformed value is 400 naming `If-Match`.
#[derive(Debug)]
pub(crate) struct IfMatch(pub(crate) Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(axum::http::header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let text = value.to_str().unwrap_or("").trim();
        if text == "*" {
            return Ok(IfMatch(None));
        }
        let version =
            text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).and_then(|t| t.parse().ok());
        match version {
            Some(v) => Ok(IfMatch(Some(v))),
            None => Err(ApiError::invalid(
                "If-Match",
                format!("{text:?} is not an ETag of this API (\"<version>\")"),
            )),
        }
    }
}

/// A `Conflict` of an update made with `If-Match` is 412 `precondition_failed`; any other
/// error is itself.
pub(crate) fn precondition(e: crate::platform::Error, if_match: Option<u64>) -> ApiError {
    if if_match.is_some() && e.kind() == crate::platform::ErrorKind::Conflict {
        return ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            ErrorCode::PreconditionFailed,
            e.to_string(),
        );
    }
    e.into()
}
