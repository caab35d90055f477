//! `Domain` (the platform domain, e.g. `kwscloud.in`) and `Hostname` (one label under it).

use std::fmt;

use crate::{DnsLabel, ParseError, Rule};

/// A DNS name: `DnsLabel`s joined by dots, at most 253 bytes, stored lowercase.
///
/// # Contract
/// Every value is non-empty, has no empty label, and each label obeys the `DnsLabel` contract.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Domain(String);

impl Domain {
    /// The longest DNS name, in bytes (RFC 1035, without the root dot).
    pub const MAX_LEN: usize = 253;
    const WHAT: &'static str = "domain";

    /// Parses `raw`, lowercasing ASCII letters.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        check_name(Self::WHAT, raw)?;
        Ok(Self(raw.to_ascii_lowercase()))
    }

    /// The name, lowercase, without a trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The labels, left to right.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

/// Checks a dotted name: length, then every label.
fn check_name(what: &'static str, raw: &str) -> Result<(), ParseError> {
    if raw.is_empty() {
        return Err(ParseError::new(what, raw, Rule::Empty));
    }
    if raw.len() > Domain::MAX_LEN {
        return Err(ParseError::new(
            what,
            raw,
            Rule::TooLong { len: raw.len(), max: Domain::MAX_LEN },
        ));
    }
    let mut offset = 0;
    for label in raw.split('.') {
        if label.is_empty() {
            return Err(ParseError::new(what, raw, Rule::EmptyLabel));
        }
        DnsLabel::check(what, label).map_err(|e| match e.rule {
            Rule::ForbiddenChar { ch, at, allowed } => {
                ParseError::new(what, raw, Rule::ForbiddenChar { ch, at: at + offset, allowed })
            }
            rule => ParseError::new(what, raw, rule),
        })?;
        offset += label.len() + 1;
    }
    Ok(())
}

/// A hostname made of exactly one `DnsLabel` under the platform `Domain`, e.g.
/// `app1.kwscloud.in`.
///
/// # Contract
/// `label()` is a valid `DnsLabel`, `domain()` a valid `Domain`, and the whole name is at most
/// 253 bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Hostname {
    label: DnsLabel,
    domain: Domain,
}

impl Hostname {
    const WHAT: &'static str = "hostname";

    /// `label` under `domain`; fails only when the whole name would exceed 253 bytes.
    pub fn new(label: DnsLabel, domain: &Domain) -> Result<Self, ParseError> {
        let len = label.as_str().len() + 1 + domain.as_str().len();
        if len > Domain::MAX_LEN {
            let full = format!("{label}.{domain}");
            return Err(ParseError::new(
                Self::WHAT,
                &full,
                Rule::TooLong { len, max: Domain::MAX_LEN },
            ));
        }
        Ok(Self { label, domain: domain.clone() })
    }

    /// Parses `raw` and requires it to be exactly one label under `domain`.
    pub fn parse_under(raw: &str, domain: &Domain) -> Result<Self, ParseError> {
        check_name(Self::WHAT, raw)?;
        let lower = raw.to_ascii_lowercase();
        let Some(first) = lower.strip_suffix(domain.as_str()).and_then(|p| p.strip_suffix('.'))
        else {
            return Err(ParseError::new(
                Self::WHAT,
                raw,
                Rule::OutsideDomain { domain: domain.to_string() },
            ));
        };
        if first.contains('.') {
            return Err(ParseError::new(Self::WHAT, raw, Rule::NotOneLabel));
        }
        Self::new(DnsLabel::parse(first)?, domain)
    }

    /// Parses a full name, taking the first label as the label and the rest as the domain.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        check_name(Self::WHAT, raw)?;
        let Some((first, rest)) = raw.split_once('.') else {
            return Err(ParseError::new(Self::WHAT, raw, Rule::Format("<label>.<domain>")));
        };
        Self::new(DnsLabel::parse(first)?, &Domain::parse(rest)?)
    }

    /// The label in front of the domain.
    pub fn label(&self) -> &DnsLabel {
        &self.label
    }

    /// The platform domain.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }
}

macro_rules! string_forms {
    ($ty:ty) => {
        impl ::std::str::FromStr for $ty {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
        impl TryFrom<String> for $ty {
            type Error = ParseError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }
        impl From<$ty> for String {
            fn from(value: $ty) -> Self {
                value.to_string()
            }
        }
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), self.to_string())
            }
        }
    };
}
pub(crate) use string_forms;

string_forms!(Domain);
string_forms!(Hostname);

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.label, self.domain)
    }
}
