//! Managed PostgreSQL databases, each with its own scoped role.

use serde::{Deserialize, Serialize};

use crate::platform::store::{Kind, Resource};

/// Where the database is; the password is shown once, at creation and at each rotation, and
/// is kept nowhere by the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseSpec {
    /// The server's database name, once created.
    pub database: Option<String>,
    /// Its login role, once created.
    pub role: Option<String>,
    /// The host tenants connect to.
    pub host: Option<String>,
    /// The port tenants connect to.
    pub port: Option<u16>,
}

impl Resource for DatabaseSpec {
    const KIND: Kind = Kind::Database;
    type Status = DatabaseStatus;
}

/// What the provisioner reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseStatus {
    /// Whether the provisioner lists it.
    pub exists: bool,
}
