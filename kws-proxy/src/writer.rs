//! The `ProxyWriter` trait.

use std::fmt::Debug;

use async_trait::async_trait;
use kws_core::Hostname;

use crate::{ProxyError, Route, RoutePolicy};

/// Publishes and unpublishes routes from public hostnames to upstreams.
///
/// # Contract
/// - `publish` first checks the route against `policy()` (host under the platform domain,
///   upstream in an allowed subnet) and refuses a host that another route holds
///   (`ProxyError::DuplicateHost`). Publishing a route equal to the one already published is a
///   no-op that returns `Ok` (idempotent for retries). A refused route changes nothing: no
///   file, no reload, the routes already published keep serving.
/// - `publish_all` is all or nothing: either every route is published, or none is and the
///   routes already published keep serving. Its checks are those of `publish`, plus no host
///   twice in the batch.
/// - `unpublish` removes the route of `host` (`ProxyError::NotFound` if there is none); on
///   failure the route stays published.
/// - `routes` lists the published routes, sorted by host.
/// - When a call returns `Ok`, the change is live: every request that starts after it sees it.
#[async_trait]
pub trait ProxyWriter: Send + Sync + Debug + 'static {
    /// The domain and upstream subnets this writer accepts.
    fn policy(&self) -> &RoutePolicy;

    /// Publishes `route`: a batch of one.
    async fn publish(&self, route: Route) -> Result<(), ProxyError> {
        self.publish_all(vec![route]).await
    }

    /// Publishes every route of `routes`, or none of them.
    async fn publish_all(&self, routes: Vec<Route>) -> Result<(), ProxyError>;

    /// Replaces the published route of `route.host()` with `route` (e.g. another upstream).
    async fn replace(&self, route: Route) -> Result<(), ProxyError>;

    /// Removes the route of `host`.
    async fn unpublish(&self, host: &Hostname) -> Result<(), ProxyError>;

    /// The published routes, sorted by host.
    async fn routes(&self) -> Result<Vec<Route>, ProxyError>;

    /// Makes what the proxy serves match the published routes again, where the two can drift
    /// apart (a route removed from nginx's table by hand); returns the hosts it repaired,
    /// sorted. A backend whose routes cannot drift from what it serves repairs nothing.
    async fn repair(&self) -> Result<Vec<Hostname>, ProxyError> {
        Ok(Vec::new())
    }
}

/// Conveniences on every `ProxyWriter`.
#[async_trait]
pub trait ProxyWriterExt: ProxyWriter {
    /// The published route of `host`, if any.
    async fn route(&self, host: &Hostname) -> Result<Option<Route>, ProxyError> {
        Ok(self.routes().await?.into_iter().find(|r| r.host() == host))
    }
}

impl<T: ProxyWriter + ?Sized> ProxyWriterExt for T {}
