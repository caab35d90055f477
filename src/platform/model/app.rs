//! Apps: `<name>.<domain>` routed over HTTPS to a port of one of the tenant's instances.

use chrono::{DateTime, Utc};
use kws_core::InstanceId;
use serde::{Deserialize, Serialize};

use crate::platform::store::{Kind, Resource};

/// Which instance and port the app serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSpec {
    /// The instance (of the same tenant).
    pub instance: InstanceId,
    /// Its port.
    pub port: u16,
}

impl Resource for AppSpec {
    const KIND: Kind = Kind::App;
    type Status = AppStatus;
}

/// The state of the platform's wildcard certificate, which serves every app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CertificateState {
    /// Issued and valid until `not_after`.
    Valid {
        /// When it expires.
        not_after: DateTime<Utc>,
    },
    /// Not issued yet, or expired.
    Missing,
    /// The platform serves its apps without an ACME issuer (plain HTTP or the operator's own
    /// certificate files).
    Unmanaged,
}

/// What the proxy serves for the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStatus {
    /// Whether the proxy has the route.
    pub routed: bool,
    /// The upstream it routes to.
    pub upstream: Option<String>,
    /// The certificate.
    pub certificate: CertificateState,
}
