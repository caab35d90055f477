//! `MemoryProxy`: the in-memory `ProxyWriter`, for tests of pure logic and the embedded
//! defaults of the platform.

use std::collections::BTreeMap;

use async_trait::async_trait;
use kws_core::Hostname;
use tokio::sync::Mutex;

use crate::{ProxyError, ProxyWriter, Route, RoutePolicy, table::RouteTable};

/// Routes kept in memory; serves nothing.
#[derive(Debug)]
pub struct MemoryProxy {
    policy: RoutePolicy,
    routes: Mutex<BTreeMap<Hostname, Route>>,
}

impl MemoryProxy {
    /// An empty table that accepts what `policy` allows.
    pub fn new(policy: RoutePolicy) -> Self {
        Self { policy, routes: Mutex::new(BTreeMap::new()) }
    }
}

#[async_trait]
impl ProxyWriter for MemoryProxy {
    fn policy(&self) -> &RoutePolicy {
        &self.policy
    }

    async fn publish_all(&self, routes: Vec<Route>) -> Result<(), ProxyError> {
        let mut table = self.routes.lock().await;
        let fresh = RouteTable::new(&self.policy, &table).admit(routes)?;
        for route in fresh {
            table.insert(route.host().clone(), route);
        }
        Ok(())
    }

    async fn replace(&self, route: Route) -> Result<(), ProxyError> {
        self.policy.check(&route)?;
        match self.routes.lock().await.get_mut(route.host()) {
            Some(published) => {
                *published = route;
                Ok(())
            }
            None => Err(ProxyError::NotFound { host: route.host().clone() }),
        }
    }

    async fn unpublish(&self, host: &Hostname) -> Result<(), ProxyError> {
        match self.routes.lock().await.remove(host) {
            Some(_) => Ok(()),
            None => Err(ProxyError::NotFound { host: host.clone() }),
        }
    }

    async fn routes(&self) -> Result<Vec<Route>, ProxyError> {
        Ok(self.routes.lock().await.values().cloned().collect())
    }
}
