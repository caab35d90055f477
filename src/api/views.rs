//! What the API answers: objects in one shape whatever their kind, lists with a cursor.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::platform::store::{Doc, Meta, Object, ObjectRecord, Resource};

/// A tenant object: its metadata, desired `spec` and observed `status` (`null` when nobody
/// could observe it), with the time of the observation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ObjectView {
    id: Uuid,
    kind: &'static str,
    tenant: String,
    name: String,
    version: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deleting: Option<DateTime<Utc>>,
    #[schema(value_type = Object)]
    spec: Doc,
    #[schema(value_type = Object)]
    status: Doc,
    observed_at: Option<DateTime<Utc>>,
}

impl ObjectView {
    fn new(meta: &Meta, spec: Doc, status: Doc, at: Option<DateTime<Utc>>) -> Self {
        Self {
            id: meta.id,
            kind: meta.kind.as_str(),
            tenant: meta.tenant.to_string(),
            name: meta.name.to_string(),
            version: meta.version,
            created_at: meta.created_at,
            updated_at: meta.updated_at,
            deleting: meta.deleting,
            spec,
            status,
            observed_at: at,
        }
    }

    /// The view of a stored record.
    pub(crate) fn of_record(r: ObjectRecord) -> Self {
        Self::new(&r.meta, r.spec, r.status, r.observed_at)
    }

    /// The view of a typed object.
    pub(crate) fn of<S: Resource>(o: &Object<S>) -> Self {
        let spec = serde_json::to_value(&o.spec).unwrap_or(Value::Null);
        let status = o
            .status
            .value
            .as_ref()
            .map_or(Value::Null, |s| serde_json::to_value(s).unwrap_or(Value::Null));
        Self::new(&o.meta, spec.into(), status.into(), o.status.at)
    }

    /// The version, for `ETag`.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }
}

/// A page of a list: the items, and the cursor of the next page (`null` on the last).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Listed<T> {
    pub(crate) items: Vec<T>,
    pub(crate) next: Option<String>,
}

/// `status` with `body` as JSON, and the object's version as a strong `ETag`.
pub(crate) fn with_etag(status: StatusCode, view: ObjectView) -> Response {
    let etag = format!("\"{}\"", view.version());
    let mut response = (status, Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}
