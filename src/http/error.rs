//! The API's one error shape, `{"error": {"code", "message", "field"?, "request_id"}}`, and
//! the one table from the Platform's error kinds to a status and a stable code.

use std::time::Duration;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::platform::{Error, ErrorKind};

/// A stable error code: clients match on it, never on the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: a malformed or refused value (`field` names it).
    Invalid,
    /// 400: the body is not the JSON the route takes.
    MalformedBody,
    /// 401: no credentials, or wrong, expired or revoked ones.
    Unauthenticated,
    /// 403: the caller's role or token scope does not allow this.
    Forbidden,
    /// 403: a cross-site request carried the session cookie.
    CrossOrigin,
    /// 404: no such thing, or one of another tenant.
    NotFound,
    /// 405: the route takes another method.
    MethodNotAllowed,
    /// 408: a long poll reached its timeout first.
    Timeout,
    /// 409: the name is taken.
    AlreadyExists,
    /// 409: the object changed since the version given.
    Conflict,
    /// 409: the tenant is at a quota.
    QuotaExceeded,
    /// 409: a pool (addresses, ports) is exhausted.
    Exhausted,
    /// 409: the object is still in use.
    InUse,
    /// 409: the operation was cancelled.
    Cancelled,
    /// 412: `If-Match` names a version that is not the current one.
    PreconditionFailed,
    /// 413: the body is larger than the server takes.
    PayloadTooLarge,
    /// 422: the idempotency key was used with another body.
    IdempotencyMismatch,
    /// 429: too many requests (logins, jobs); `Retry-After` says when to retry.
    RateLimited,
    /// 500: the server failed.
    Internal,
    /// 503: a feature's backend is not configured or not reachable.
    Unavailable,
    /// 503: the server is busy; `Retry-After` says when to retry.
    Busy,
    /// 504: the operation passed its deadline.
    DeadlineExceeded,
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// The stable code.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
    /// The field of the request the error is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request's id (also in `X-Request-Id`).
    pub request_id: Option<String>,
}

/// An error answer: status, code, message, and maybe a field and a `Retry-After`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The code.
    pub code: ErrorCode,
    /// The message.
    pub message: String,
    /// The field, when the error is about one.
    pub field: Option<String>,
    /// When to retry (429, 503).
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None, retry_after: None }
    }

    /// 400 naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, ErrorCode::Invalid, message);
        e.field = Some(field.into());
        e
    }

    /// 401.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, message)
    }

    /// 404 for `what`.
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, format!("{what} not found"))
    }

    /// 403 for a token without `scope`.
    pub fn missing_scope(scope: &str) -> Self {
        let message = format!("this needs a token with the {scope} scope");
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    /// 500, logged; the message does not leak the cause.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "internal error")
    }
}

/// The one table: a Platform error kind to its status and code.
pub fn status_of(kind: ErrorKind) -> (StatusCode, ErrorCode) {
    use ErrorCode as C;
    match kind {
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, C::NotFound),
        ErrorKind::AlreadyExists => (StatusCode::CONFLICT, C::AlreadyExists),
        ErrorKind::Conflict => (StatusCode::CONFLICT, C::Conflict),
        ErrorKind::Invalid => (StatusCode::BAD_REQUEST, C::Invalid),
        ErrorKind::QuotaExceeded => (StatusCode::CONFLICT, C::QuotaExceeded),
        ErrorKind::InUse => (StatusCode::CONFLICT, C::InUse),
        ErrorKind::Exhausted => (StatusCode::CONFLICT, C::Exhausted),
        ErrorKind::Forbidden => (StatusCode::FORBIDDEN, C::Forbidden),
        ErrorKind::IdempotencyMismatch => {
            (StatusCode::UNPROCESSABLE_ENTITY, C::IdempotencyMismatch)
        }
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, C::Unavailable),
        ErrorKind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, C::RateLimited),
        ErrorKind::Busy => (StatusCode::SERVICE_UNAVAILABLE, C::Busy),
        ErrorKind::Cancelled => (StatusCode::CONFLICT, C::Cancelled),
        ErrorKind::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, C::DeadlineExceeded),
        ErrorKind::Backend | ErrorKind::Config => (StatusCode::INTERNAL_SERVER_ERROR, C::Internal),
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, code) = status_of(e.kind());
        if code == ErrorCode::Internal {
            return ApiError::internal(&e);
        }
        let mut out = ApiError::new(status, code, e.to_string());
        match e.root() {
            Error::Invalid { field, .. } => out.field = Some((*field).to_owned()),
            Error::RateLimited { retry_after } | Error::Busy { retry_after } => {
                out.retry_after = Some(*retry_after);
            }
            Error::Unavailable { .. } => out.retry_after = Some(Duration::from_secs(30)),
            _ => {}
        }
        out
    }
}

impl From<kws_accounts::Error> for ApiError {
    fn from(e: kws_accounts::Error) -> Self {
        use kws_accounts::Error as A;
        match e {
            A::Unauthenticated(why) => ApiError::unauthenticated(why),
            A::Throttled { retry_after } => {
                let mut out = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::RateLimited,
                    "too many failed logins",
                );
                out.retry_after = Some(retry_after);
                out
            }
            A::Invalid { field, reason } => {
                ApiError::invalid(field, format!("invalid {field}: {reason}"))
            }
            A::NotFound { what } => ApiError::not_found(what),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
                request_id: super::request_id::current(),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}
