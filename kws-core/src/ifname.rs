//! `IfName`: a Linux network interface name that is safe in `ip` commands and nftables rules.

use std::fmt;

use crate::{ParseError, Rule, domain::string_forms};

/// A network interface name: 1 to 15 bytes of ASCII letters, digits, `-`, `_` and `.`, and not
/// `.` or `..`.
///
/// # Contract
/// The kernel forbids `/`, whitespace, `:` and NUL and allows at most 15 bytes (`IFNAMSIZ` - 1).
/// This type is stricter: it also excludes quotes, `$`, `;`, `*` and non-ASCII, so a value can
/// stand verbatim inside a quoted nftables string or a shell word.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfName(String);

impl IfName {
    /// `IFNAMSIZ` - 1.
    pub const MAX_LEN: usize = 15;
    const WHAT: &'static str = "interface name";
    const ALLOWED: &'static str = "ASCII letters, digits, '-', '_' and '.'";

    /// Parses `raw` as it is (interface names are case-sensitive).
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let fail = |rule| Err(ParseError::new(Self::WHAT, raw, rule));
        if raw.is_empty() {
            return fail(Rule::Empty);
        }
        if let Some((at, ch)) = raw
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return fail(Rule::ForbiddenChar { ch, at, allowed: Self::ALLOWED });
        }
        if raw.len() > Self::MAX_LEN {
            return fail(Rule::TooLong { len: raw.len(), max: Self::MAX_LEN });
        }
        if raw == "." || raw == ".." {
            return fail(Rule::DotName);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_forms!(IfName);

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for IfName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
