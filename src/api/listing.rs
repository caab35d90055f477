//! Pages of objects answered from serialized views kept between requests.
//!
//! A list of 100 instances spent most of its time turning the same records into the same JSON
//! again. Kubernetes' API server keeps each object's serialized form beside it in its watch
//! cache for the same reason; here [`ViewCache`] keeps each record's view, and a page is the
//! views' bytes put side by side.
//!
//! A kept view is used only while the record is provably unchanged: the same `spec` and
//! `status` documents ([`Doc::same`]: the store replaces a document on every write and never
//! changes one in place) and the same version, deletion mark and observation time. The entry
//! holds its documents, so their memory cannot be reused by another document while it is kept.
//! A store that makes new documents on every read (PostgreSQL) never hits and pays one
//! insertion per record.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use axum::{
    body::Bytes,
    http::header,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::views::ObjectView;
use crate::{
    http::ApiError,
    platform::store::{Doc, ObjectRecord},
};

/// Serialized views of records, by object id. Bounded: past [`ViewCache::CAPACITY`] entries
/// it starts again empty (the views of removed objects go then).
#[derive(Debug, Default)]
pub(crate) struct ViewCache {
    entries: Mutex<HashMap<Uuid, Entry>>,
}

#[derive(Debug)]
struct Entry {
    version: u64,
    deleting: Option<DateTime<Utc>>,
    observed_at: Option<DateTime<Utc>>,
    spec: Doc,
    status: Doc,
    json: Bytes,
}

impl Entry {
    fn of(record: &ObjectRecord, json: Bytes) -> Self {
        Self {
            version: record.meta.version,
            deleting: record.meta.deleting,
            observed_at: record.observed_at,
            spec: record.spec.clone(),
            status: record.status.clone(),
            json,
        }
    }

    /// Whether this entry is the view of `record` as it is now.
    fn is_view_of(&self, record: &ObjectRecord) -> bool {
        self.version == record.meta.version
            && self.deleting == record.meta.deleting
            && self.observed_at == record.observed_at
            && self.spec.same(&record.spec)
            && self.status.same(&record.status)
    }
}

impl ViewCache {
    /// The most views kept.
    pub(crate) const CAPACITY: usize = 16_384;

    fn entries(&self) -> MutexGuard<'_, HashMap<Uuid, Entry>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The JSON of each record's [`ObjectView`], in order: kept views where the record is
    /// unchanged, the others serialized (outside the lock) and kept.
    pub(crate) fn views(&self, records: &[ObjectRecord]) -> Result<Vec<Bytes>, ApiError> {
        let kept: Vec<Option<Bytes>> = {
            let entries = self.entries();
            records
                .iter()
                .map(|r| {
                    entries.get(&r.meta.id).filter(|e| e.is_view_of(r)).map(|e| e.json.clone())
                })
                .collect()
        };
        let mut made = Vec::new();
        let mut views = Vec::with_capacity(records.len());
        for (record, kept) in records.iter().zip(kept) {
            let json = match kept {
                Some(json) => json,
                None => {
                    let json = Bytes::from(
                        serde_json::to_vec(&ObjectView::of_record(record.clone()))
                            .map_err(|e| ApiError::internal(format!("serializing a view: {e}")))?,
                    );
                    made.push((record.meta.id, Entry::of(record, json.clone())));
                    json
                }
            };
            views.push(json);
        }
        if !made.is_empty() {
            let mut entries = self.entries();
            if entries.len() + made.len() > Self::CAPACITY {
                entries.clear();
            }
            entries.extend(made);
        }
        Ok(views)
    }

    /// `{"items":[…],"next":…}` of `records` as a JSON response: the same bytes as
    /// serializing [`super::views::Listed`] of their views.
    pub(crate) fn page(
        &self,
        records: &[ObjectRecord],
        next: Option<&str>,
    ) -> Result<Response, ApiError> {
        let views = self.views(records)?;
        let next = serde_json::to_string(&next)
            .map_err(|e| ApiError::internal(format!("serializing a cursor: {e}")))?;
        let size = views.iter().map(|v| v.len() + 1).sum::<usize>() + next.len() + 20;
        let mut body = Vec::with_capacity(size);
        body.extend_from_slice(b"{\"items\":[");
        for (i, view) in views.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(view);
        }
        body.extend_from_slice(b"],\"next\":");
        body.extend_from_slice(next.as_bytes());
        body.push(b'}');
        Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::platform::store::{Claims, Kind, Meta};

    fn record(name: &str, spec: serde_json::Value) -> ObjectRecord {
        let now = Utc::now();
        ObjectRecord {
            meta: Meta {
                id: Uuid::now_v7(),
                kind: Kind::Instance,
                tenant: kws_core::OwnerId::parse("acme").expect("owner"),
                name: kws_core::DnsLabel::parse(name).expect("name"),
                version: 1,
                created_at: now,
                updated_at: now,
                deleting: None,
            },
            unique: None,
            claims: Claims::default(),
            spec: spec.into(),
            status: Doc::null(),
            observed_at: None,
            origin: None,
        }
    }

    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn a_page_is_the_views_serialized() {
        let cache = ViewCache::default();
        let records = [record("a", json!({"image": "x"})), record("b", json!({"n": [1, 2]}))];
        for next in [None, Some("b")] {
            let listed = super::super::views::Listed {
                items: records.iter().cloned().map(ObjectView::of_record).collect(),
                next: next.map(str::to_owned),
            };
            let want = serde_json::to_value(&listed).expect("serialize");
            assert_eq!(body(cache.page(&records, next).expect("page")).await, want);
        }
        let empty = body(cache.page(&[], None).expect("page")).await;
        assert_eq!(empty, json!({"items": [], "next": null}));
    }

    #[test]
    fn a_kept_view_serves_only_the_record_it_was_made_of() {
        let cache = ViewCache::default();
        let mut r = record("a", json!({"image": "x"}));
        let first = cache.views(std::slice::from_ref(&r)).expect("views").remove(0);
        let again = cache.views(std::slice::from_ref(&r)).expect("views").remove(0);
        assert_eq!(
            first.as_ptr(),
            again.as_ptr(),
            "an unchanged record is answered from the cache"
        );
        // An equal document that is not the same one is a change the cache cannot rule out.
        r.status = json!({"state": "running"}).into();
        r.observed_at = Some(Utc::now());
        let observed = cache.views(std::slice::from_ref(&r)).expect("views").remove(0);
        assert!(String::from_utf8_lossy(&observed).contains("running"));
        r.spec = json!({"image": "x"}).into();
        let respec = cache.views(std::slice::from_ref(&r)).expect("views").remove(0);
        assert_ne!(respec.as_ptr(), observed.as_ptr(), "a new spec document is serialized again");
        r.meta.version = 2;
        let bumped = cache.views(std::slice::from_ref(&r)).expect("views").remove(0);
        assert!(String::from_utf8_lossy(&bumped).contains("\"version\":2"));
        r.meta.deleting = Some(Utc::now());
        let deleting = cache.views(std::slice::from_ref(&r)).expect("views").remove(0);
        assert!(String::from_utf8_lossy(&deleting).contains("\"deleting\":\"20"));
    }
}
