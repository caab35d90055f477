//! The admission checks every backend shares: policy, duplicates, idempotent retries.

use std::collections::BTreeMap;

use kws_core::Hostname;

use crate::{ProxyError, Route, RoutePolicy};

/// The published routes seen by a batch that wants to join them.
pub(crate) struct RouteTable<'a> {
    policy: &'a RoutePolicy,
    published: &'a BTreeMap<Hostname, Route>,
}

impl<'a> RouteTable<'a> {
    pub(crate) fn new(policy: &'a RoutePolicy, published: &'a BTreeMap<Hostname, Route>) -> Self {
        Self { policy, published }
    }

    /// Checks every route of `batch` and returns those not yet published (a route equal to the
    /// published one is a retry and is dropped). Fails on the first refused route.
    pub(crate) fn admit(&self, batch: Vec<Route>) -> Result<Vec<Route>, ProxyError> {
        let mut seen = BTreeMap::new();
        let mut fresh = Vec::with_capacity(batch.len());
        for route in batch {
            self.policy.check(&route)?;
            if let Some(existing) = seen.insert(route.host().clone(), route.upstream()) {
                return Err(ProxyError::DuplicateHost { host: route.host().clone(), existing });
            }
            match self.published.get(route.host()) {
                Some(existing) if existing == &route => {}
                Some(existing) => {
                    return Err(ProxyError::DuplicateHost {
                        host: route.host().clone(),
                        existing: existing.upstream(),
                    });
                }
                None => fresh.push(route),
            }
        }
        Ok(fresh)
    }
}
