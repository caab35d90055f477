//! The HTTP layer under the API (and, later, the dashboard): serving with a bounded drain,
//! the caller of a request (sessions and tokens resolved to a [`Caller`]), the cross-origin
//! guard, request ids, and the JSON error every handler answers with.
//!
//! Nothing here knows a resource: `crate::api` holds the routes.

mod auth;
mod cookie;
mod cross_origin;
mod error;
mod request_id;
mod serve;
pub(crate) mod sse;
mod state;

pub use auth::{Caller, ClientAddr};
pub use cookie::SessionCookie;
pub use cross_origin::{cross_origin_reason, guard_cross_origin, refused as refused_cross_origin};
pub use error::{ApiError, ErrorBody, ErrorCode, ErrorDetail, status_of};
pub(crate) use request_id::current as current_request_id;
pub use request_id::{RequestId, assign_request_id};
pub use serve::{Drained, serve};
pub use state::{AppState, HttpSettings, public_url};
