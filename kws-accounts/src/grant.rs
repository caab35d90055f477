//! Host grants: how a dashboard session reaches a host of its own, such as an instance's IDE
//! at `<instance>.<domain>`, whose cookies the dashboard's host-only cookie never reaches.
//!
//! The dashboard issues a *ticket* (short-lived, for one host, used once); that host trades it
//! for a *cookie* grant of its own. Both belong to the session they came from: ending that
//! session (logout, a password change, the user's removal) ends them in the same change.

use chrono::{DateTime, Utc};
use kws_core::DnsLabel;
use uuid::Uuid;

use crate::{Error, SecretHash};

/// The two kinds of grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantKind {
    /// A one-time ticket, carried in a URL from the dashboard to the host.
    Ticket,
    /// The host-only cookie a ticket was traded for.
    Cookie,
}

impl GrantKind {
    /// `ticket` or `cookie`, as stores keep it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ticket => "ticket",
            Self::Cookie => "cookie",
        }
    }

    /// The kind `raw` names.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "ticket" => Some(Self::Ticket),
            "cookie" => Some(Self::Cookie),
            _ => None,
        }
    }
}

/// A grant's row: everything but its secret, kept only as its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    /// SHA-256 of the ticket or the cookie's value.
    pub hash: SecretHash,
    /// Ticket or cookie.
    pub kind: GrantKind,
    /// The dashboard session it came from.
    pub session: Uuid,
    /// That session's user.
    pub user: DnsLabel,
    /// The one host it is good for (lowercase, without a port).
    pub host: String,
    /// When it ends on its own.
    pub expires_at: DateTime<Utc>,
}

/// `host` as grants keep it: lowercase, without a trailing dot or a port; `Invalid` when it is
/// not a host name of 1 to 253 characters of letters, digits, `-` and `.`.
pub fn normalize_host(host: &str) -> Result<String, Error> {
    let name = host.rsplit_once(':').map_or(host, |(name, port)| {
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) { name } else { host }
    });
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let fine = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if fine {
        Ok(name)
    } else {
        Err(Error::Invalid { field: "host", reason: format!("{host:?} is not a host name") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_their_port_case_and_trailing_dot() {
        assert_eq!(normalize_host("Demo.Kws.Test:8443").expect("host"), "demo.kws.test");
        assert_eq!(normalize_host("demo.kws.test.").expect("host"), "demo.kws.test");
        for bad in ["", ":80", "a..b", "-a.b", "a_b.c", "a b", "ü.test", "a.b:x", &"a".repeat(64)]
        {
            assert!(normalize_host(bad).is_err(), "{bad:?}");
        }
    }
}
