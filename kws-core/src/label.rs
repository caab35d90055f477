//! `DnsLabel`: the only door through which a user string reaches a hostname, a file name, a
//! container name, an nftables comment or an SQL identifier.

use std::{fmt, str::FromStr};

use crate::{ParseError, Rule};

/// An RFC 1123 DNS label: ASCII letters, digits and hyphens, 1 to 63 bytes, no hyphen at either
/// end, stored lowercase.
///
/// # Contract
/// Every value of this type matches `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`, so it can be used
/// verbatim in a file name, an nginx `server_name`, a Docker container name, an nftables
/// comment and a double-quoted SQL identifier without escaping.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DnsLabel(String);

impl DnsLabel {
    /// The longest label RFC 1123 allows, in bytes.
    pub const MAX_LEN: usize = 63;
    const WHAT: &'static str = "DNS label";
    const ALLOWED: &'static str = "ASCII letters, digits and '-'";

    /// Parses `raw`, lowercasing ASCII letters.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        Self::check(Self::WHAT, raw)?;
        Ok(Self(raw.to_ascii_lowercase()))
    }

    /// The checks of a label, reported under the name of the type that is parsing (`what`).
    pub(crate) fn check(what: &'static str, raw: &str) -> Result<(), ParseError> {
        let fail = |rule| Err(ParseError::new(what, raw, rule));
        if raw.is_empty() {
            return fail(Rule::Empty);
        }
        if let Some((at, ch)) =
            raw.char_indices().find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return fail(Rule::ForbiddenChar { ch, at, allowed: Self::ALLOWED });
        }
        if raw.len() > Self::MAX_LEN {
            return fail(Rule::TooLong { len: raw.len(), max: Self::MAX_LEN });
        }
        if raw.starts_with('-') || raw.ends_with('-') {
            return fail(Rule::EdgeHyphen);
        }
        Ok(())
    }

    /// The label, lowercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DnsLabel {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for DnsLabel {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<DnsLabel> for String {
    fn from(label: DnsLabel) -> Self {
        label.0
    }
}

impl AsRef<str> for DnsLabel {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DnsLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DnsLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DnsLabel({:?})", self.0)
    }
}
