//! Who is asking: the tenant scope every read and write of the Platform takes.
//!
//! A tenant's scope sees only that tenant: an object of another tenant is `NotFound`, never
//! `Forbidden`, so a caller cannot learn that it exists. Only the operator scope lists across
//! tenants and creates or deletes tenants.

use std::fmt;

use kws_core::OwnerId;

use crate::platform::Error;

/// A member's role in a tenant, in increasing order of what it may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything of the tenant.
    Viewer,
    /// Also creates, runs and removes the tenant's resources.
    Member,
    /// Also manages members, tokens and quotas.
    Admin,
}

impl Role {
    /// The role's name, as the API and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
        }
    }

    /// Parses `viewer`, `member` or `admin`.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        match raw {
            "viewer" => Ok(Role::Viewer),
            "member" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            _ => Err(Error::invalid(
                "role",
                format!("{:?} is not one of viewer, member, admin", raw),
            )),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scope of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The platform operator: every tenant, every role.
    Operator,
    /// A member of one tenant, with its role there.
    Tenant {
        /// The tenant.
        tenant: OwnerId,
        /// The member's role in it.
        role: Role,
    },
}

impl Scope {
    /// A member's scope in `tenant`.
    pub fn tenant(tenant: OwnerId, role: Role) -> Self {
        Scope::Tenant { tenant, role }
    }

    /// Whether the scope sees `tenant` at all.
    pub fn sees(&self, tenant: &OwnerId) -> bool {
        match self {
            Scope::Operator => true,
            Scope::Tenant { tenant: own, .. } => own == tenant,
        }
    }

    /// Whether this is the operator scope.
    pub fn is_operator(&self) -> bool {
        matches!(self, Scope::Operator)
    }

    /// The tenant a tenant scope is confined to (`None` for the operator).
    pub fn confined_to(&self) -> Option<&OwnerId> {
        match self {
            Scope::Operator => None,
            Scope::Tenant { tenant, .. } => Some(tenant),
        }
    }

    /// Checks that the scope may act on `tenant` with at least `need`: another tenant is
    /// `NotFound` (named as the tenant), a lower role of the same tenant is `Forbidden`.
    pub fn require(&self, tenant: &OwnerId, need: Role) -> Result<(), Error> {
        match self {
            Scope::Operator => Ok(()),
            Scope::Tenant { tenant: own, .. } if own != tenant => {
                Err(Error::not_found("tenant", tenant))
            }
            Scope::Tenant { role, .. } if *role < need => Err(Error::Forbidden { need }),
            Scope::Tenant { .. } => Ok(()),
        }
    }

    /// Checks that this is the operator scope; a tenant scope gets `Forbidden`.
    pub fn require_operator(&self) -> Result<(), Error> {
        match self {
            Scope::Operator => Ok(()),
            Scope::Tenant { .. } => Err(Error::Forbidden { need: Role::Admin }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(s: &str) -> OwnerId {
        OwnerId::parse(s).expect("owner")
    }

    #[test]
    fn another_tenant_is_not_found_and_a_low_role_is_forbidden() {
        let alice = Scope::tenant(owner("alice"), Role::Viewer);
        assert!(matches!(alice.require(&owner("bob"), Role::Viewer), Err(Error::NotFound { .. })));
        assert!(matches!(
            alice.require(&owner("alice"), Role::Member),
            Err(Error::Forbidden { need: Role::Member })
        ));
        assert!(alice.require(&owner("alice"), Role::Viewer).is_ok());
        assert!(Scope::Operator.require(&owner("bob"), Role::Admin).is_ok());
        assert!(Role::Viewer < Role::Member && Role::Member < Role::Admin);
        assert!(Role::parse("owner").is_err());
    }
}
