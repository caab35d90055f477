//! `DnsLabel`: the only door through which a user string reaches a hostname, a file name, a
//! container name, an nftables comment or an SQL identifier.

use std::{
    cmp::Ordering,
    fmt,
    hash::{Hash, Hasher},
    str::FromStr,
    sync::Arc,
};

use crate::{ParseError, Rule};

/// An RFC 1123 DNS label: ASCII letters, digits and hyphens, 1 to 63 bytes, no hyphen at either
/// end, stored lowercase.
///
/// # Contract
/// Every value of this type matches `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`, so it can be used
/// verbatim in a file name, an nginx `server_name`, a Docker container name, an nftables
/// comment and a double-quoted SQL identifier without escaping.
///
/// `clone` never allocates: a label of up to 22 bytes is stored in place (24 bytes, like a
/// `String`) and copied, a longer one is shared (one reference count). A name carried in every
/// result of a hot path (a pool name in each IP lease) costs nothing to hand out.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DnsLabel(Repr);

/// Labels up to this many bytes are stored in place.
const INLINE: usize = 22;

/// A label is `Inline` exactly when it fits, so equal labels have equal representations.
#[derive(Clone, PartialEq, Eq)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<str>),
}

const _: () = assert!(size_of::<DnsLabel>() == 24);

impl DnsLabel {
    /// The longest label RFC 1123 allows, in bytes.
    pub const MAX_LEN: usize = 63;
    const WHAT: &'static str = "DNS label";
    const ALLOWED: &'static str = "ASCII letters, digits and '-'";

    /// Parses `raw`, lowercasing ASCII letters.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        Self::check(Self::WHAT, raw)?;
        if let Ok(len) = u8::try_from(raw.len())
            && raw.len() <= INLINE
        {
            let mut bytes = [0; INLINE];
            bytes[..raw.len()].copy_from_slice(raw.as_bytes());
            bytes.make_ascii_lowercase();
            return Ok(Self(Repr::Inline { len, bytes }));
        }
        Ok(Self(Repr::Shared(raw.to_ascii_lowercase().into())))
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
        match &self.0 {
            // Only ASCII is ever stored, so the conversion cannot fail.
            Repr::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            Repr::Shared(s) => s,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Shared(s) => s.as_bytes(),
        }
    }
}

impl PartialOrd for DnsLabel {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The order of the label strings.
impl Ord for DnsLabel {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

/// A label in place hashes as one 24-byte block (its length, its bytes, zeros): one call into
/// the hasher, of a fixed size; a longer one as its string.
impl Hash for DnsLabel {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                let mut block = [0; INLINE + 2];
                block[0] = *len;
                block[1..=INLINE].copy_from_slice(bytes);
                state.write(&block);
            }
            Repr::Shared(s) => s.hash(state),
        }
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
        label.as_str().to_owned()
    }
}

impl AsRef<str> for DnsLabel {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for DnsLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for DnsLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DnsLabel({:?})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    /// Labels stored in place (up to 22 bytes) and shared (longer) compare as their strings;
    /// equal labels hash alike.
    #[test]
    fn inline_and_shared_labels_compare_as_their_strings() {
        let hasher = std::collections::hash_map::RandomState::new();
        let names = ["a", "App-1", &"b".repeat(22), &"C".repeat(23), &"d".repeat(63)];
        let labels: Vec<DnsLabel> = names.iter().map(|n| n.parse().expect("label")).collect();
        for (n, l) in names.iter().zip(&labels) {
            let lower = n.to_ascii_lowercase();
            assert_eq!(l.as_str(), lower);
            assert_eq!(String::from(l.clone()), lower);
            let upper: DnsLabel = n.to_ascii_uppercase().parse().expect("label");
            assert_eq!(l, &upper);
            assert_eq!(hasher.hash_one(l), hasher.hash_one(&upper));
            assert_eq!(l, &l.clone());
            for (m, k) in names.iter().zip(&labels) {
                let (a, b) = (n.to_ascii_lowercase(), m.to_ascii_lowercase());
                assert_eq!(l.cmp(k), a.cmp(&b), "{a} vs {b}");
                assert_eq!(l == k, a == b);
            }
        }
        let long: DnsLabel = "x".repeat(40).parse().expect("label");
        assert_eq!(serde_json::to_string(&long).ok(), Some(format!("\"{}\"", "x".repeat(40))));
    }
}
