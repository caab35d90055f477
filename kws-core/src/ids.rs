//! Identifiers: `OwnerId` and `InstanceId` (names that end up in hostnames and resource names)
//! and `JobId` (unique and time-sortable).

use std::{fmt, str::FromStr};

use crate::{DnsLabel, ParseError, Rule, domain::string_forms};

macro_rules! label_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        ///
        /// # Contract
        /// The value is a `DnsLabel`, with all of that type's guarantees.
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(DnsLabel);

        impl $name {
            /// Parses `raw` as a DNS label (lowercased).
            pub fn parse(raw: &str) -> Result<Self, ParseError> {
                DnsLabel::check($what, raw)?;
                DnsLabel::parse(raw).map(Self)
            }

            /// The identifier as a label.
            pub fn label(&self) -> &DnsLabel {
                &self.0
            }

            /// The identifier as a string.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl From<DnsLabel> for $name {
            fn from(label: DnsLabel) -> Self {
                Self(label)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0.as_str())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.0.as_str()
            }
        }

        string_forms!($name);
    };
}

label_id!(
    /// The owner of resources (a user or a team); it names their network, their peers, their
    /// databases.
    OwnerId,
    "owner id"
);
label_id!(
    /// An instance's name; the IDE is published at `<instance>.<domain>`.
    InstanceId,
    "instance id"
);

/// A job's identifier: a UUIDv7, shown as 32 lowercase hex digits.
///
/// # Contract
/// Ids made by `JobId::new` in one process are unique and strictly increasing (in both `Ord`
/// and their string form); across processes they sort by creation millisecond. The string
/// form is safe in file names and container names.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(uuid::Uuid);

impl JobId {
    const WHAT: &'static str = "job id";

    /// A new id for now.
    #[allow(clippy::new_without_default)] // a new id is an event, not a default value
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    /// Parses the 32-hex-digit form.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        if raw.len() != 32 || !raw.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ParseError::new(Self::WHAT, raw, Rule::Format("32 lowercase hex digits")));
        }
        uuid::Uuid::parse_str(raw)
            .map(Self)
            .map_err(|_| ParseError::new(Self::WHAT, raw, Rule::Format("32 lowercase hex digits")))
    }

    /// Milliseconds since the Unix epoch at which the id was made.
    pub fn created_ms(&self) -> u64 {
        let b = self.0.as_bytes();
        b[..6].iter().fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte))
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.simple())
    }
}

impl FromStr for JobId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for JobId {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> Self {
        id.to_string()
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({})", self.0.simple())
    }
}
