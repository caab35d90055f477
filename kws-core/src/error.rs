//! The one parse error of the vocabulary: it names the type, the offending value (escaped, so
//! a hostile value cannot forge log lines) and the rule it broke.

use std::fmt;

/// Why a string was refused as a vocabulary value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} \"{value}\": {rule}")]
pub struct ParseError {
    /// The type that refused the value, e.g. `"DNS label"`.
    pub what: &'static str,
    /// The offending value, escaped with Rust's `escape_debug` and cut to 80 characters.
    pub value: String,
    /// The rule the value broke.
    pub rule: Rule,
}

impl ParseError {
    pub(crate) fn new(what: &'static str, raw: &str, rule: Rule) -> Self {
        const SHOWN: usize = 80;
        let mut value: String = raw.chars().take(SHOWN).flat_map(char::escape_debug).collect();
        if raw.chars().nth(SHOWN).is_some() {
            value.push('…');
        }
        Self { what, value, rule }
    }
}

/// The rule a refused value broke.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// The value is empty.
    Empty,
    /// The value is longer than allowed.
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The largest length allowed, in bytes.
        max: usize,
    },
    /// A character that the type does not allow.
    ForbiddenChar {
        /// The character.
        ch: char,
        /// Its byte offset in the value.
        at: usize,
        /// What the type allows instead.
        allowed: &'static str,
    },
    /// A hyphen at the start or the end of a DNS label.
    EdgeHyphen,
    /// A dot-separated part is empty (`a..b`, a leading or trailing dot).
    EmptyLabel,
    /// `.` and `..` are path components, never names.
    DotName,
    /// A hostname that does not end in the platform domain.
    OutsideDomain {
        /// The platform domain the hostname must lie under.
        domain: String,
    },
    /// A hostname must be exactly one label under the platform domain.
    NotOneLabel,
    /// A value that is not of the expected format.
    Format(&'static str),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Empty => write!(f, "must not be empty"),
            Rule::TooLong { len, max } => write!(f, "is {len} bytes long, at most {max} allowed"),
            Rule::ForbiddenChar { ch, at, allowed } => write!(
                f,
                "character '{}' at byte {at} is not allowed (allowed: {allowed})",
                ch.escape_debug()
            ),
            Rule::EdgeHyphen => write!(f, "must not start or end with a hyphen"),
            Rule::EmptyLabel => {
                write!(f, "has an empty label (two dots in a row, or a leading or trailing dot)")
            }
            Rule::DotName => write!(f, "\".\" and \"..\" are not names"),
            Rule::OutsideDomain { domain } => {
                write!(f, "is not under the platform domain {domain}")
            }
            Rule::NotOneLabel => write!(f, "must be exactly one label under the platform domain"),
            Rule::Format(expected) => write!(f, "expected {expected}"),
        }
    }
}
