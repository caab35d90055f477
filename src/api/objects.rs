//! Reads shared by every kind of tenant object: a page of a tenant's objects, one by name.

use axum::response::Response;
use kws_accounts::TokenScope;
use serde::Deserialize;

use super::{
    listing::ViewCache,
    views::{ObjectView, with_etag},
};
use crate::{
    http::{ApiError, AppState, Caller},
    platform::store::{Kind, Page},
};

/// `?limit=&after=`: at most `limit` objects (1 to 1,000, 100 by default) whose names come
/// after `after`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    after: Option<String>,
}

/// A page of the tenant's objects of `kind`, by name, as [`super::views::Listed`] of their
/// views (kept in `views` between requests); `next` is the cursor of the next page.
pub(crate) async fn list(
    state: &AppState,
    views: &ViewCache,
    caller: &Caller,
    tenant: &str,
    kind: Kind,
    query: PageQuery,
) -> Result<Response, ApiError> {
    let (tenant, scope) = caller.in_tenant(tenant, TokenScope::Read)?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=Page::MAX).contains(&limit) {
        return Err(ApiError::invalid("limit", format!("limit is 1 to {}", Page::MAX)));
    }
    let page = Page { after: query.after.map(|a| (tenant.clone(), a)), limit };
    let records = state.platform().store().list_objects(&scope, kind, Some(&tenant), &page).await?;
    let next = (records.len() == limit).then(|| records.last().map(|r| r.meta.name.as_str()));
    views.page(&records, next.flatten())
}

/// The `{name}` path parameter, checked: 400 naming `name` when it is no object name.
pub(crate) fn object_name(raw: &str) -> Result<kws_core::DnsLabel, ApiError> {
    kws_core::DnsLabel::parse(raw)
        .map_err(|e| ApiError::invalid("name", format!("invalid name: {e}")))
}

/// One object of the tenant by kind and name, with its version as `ETag`.
pub(crate) async fn get(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    kind: Kind,
    name: &str,
) -> Result<Response, ApiError> {
    let (tenant, scope) = caller.in_tenant(tenant, TokenScope::Read)?;
    let name = object_name(name)?;
    let record = state.platform().store().get_object(&scope, kind, &tenant, name.as_str()).await?;
    Ok(with_etag(axum::http::StatusCode::OK, ObjectView::of_record(record)))
}
