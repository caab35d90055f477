//! `DnsProvider`: where the DNS-01 challenge records go.

use std::fmt::{self, Debug};

use async_trait::async_trait;
use kws_core::Domain;

/// The name of the DNS-01 challenge record of a domain: `_acme-challenge.<domain>`.
///
/// The wildcard `*.<domain>` and `<domain>` itself share this name, so two records with
/// different values live under it during an order.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ChallengeName(String);

impl ChallengeName {
    /// `_acme-challenge.<domain>`.
    pub fn for_domain(domain: &Domain) -> Self {
        Self(format!("_acme-challenge.{domain}"))
    }

    /// The name, without a trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChallengeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Debug for ChallengeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChallengeName({:?})", self.0)
    }
}

/// A TXT record created by a `DnsProvider`, as needed to remove it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxtRecord {
    /// The record's name.
    pub name: ChallengeName,
    /// The record's value (a DNS-01 digest: base64url, no padding).
    pub value: String,
    /// The provider's id of the record, if it has one.
    pub id: Option<String>,
}

/// Why a DNS provider call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The provider could not be reached or answered something that is not its protocol.
    #[error("DNS provider {provider}: {what}")]
    Transport {
        /// The provider, e.g. `cloudflare`.
        provider: &'static str,
        /// What went wrong.
        what: String,
    },
    /// The provider refused the credentials.
    #[error("DNS provider {provider} refused the credentials (HTTP {status})")]
    Unauthorized {
        /// The provider.
        provider: &'static str,
        /// The HTTP status.
        status: u16,
    },
    /// No zone of the account contains the name.
    #[error("DNS provider {provider} has no zone containing {name}")]
    ZoneNotFound {
        /// The provider.
        provider: &'static str,
        /// The record name.
        name: String,
    },
    /// The provider answered with an error.
    #[error("DNS provider {provider} refused {action} (HTTP {status}): {message}")]
    Refused {
        /// The provider.
        provider: &'static str,
        /// What was asked.
        action: &'static str,
        /// The HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
}

/// Creates and removes the TXT records of DNS-01 challenges.
///
/// # Contract
/// - `add_txt` creates a TXT record `name` = `value` and returns it once the provider has
///   accepted it; several records with the same name and different values may coexist.
/// - `remove_txt` removes a record that `add_txt` returned; removing a record that is already
///   gone is `Ok` (cleanup after a failed order must not fail).
#[async_trait]
pub trait DnsProvider: Send + Sync + Debug + 'static {
    /// Creates the TXT record `name` = `value`.
    async fn add_txt(&self, name: &ChallengeName, value: &str) -> Result<TxtRecord, DnsError>;

    /// Removes a record that `add_txt` created.
    async fn remove_txt(&self, record: &TxtRecord) -> Result<(), DnsError>;
}
