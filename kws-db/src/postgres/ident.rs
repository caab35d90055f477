//! Server-side names: the database and the role of `(owner, name)` share one identifier,
//! derived only from the two labels, and every identifier or literal is quoted when it enters
//! SQL.

use std::fmt;

use kws_core::{DnsLabel, OwnerId};
use sha2::{Digest, Sha256};

/// The prefix of every identifier kws-db makes; names with it belong to the provisioner.
pub(crate) const PREFIX: &str = "kws_";
/// PostgreSQL truncates identifiers longer than this (NAMEDATALEN - 1), in bytes.
pub(crate) const MAX_LEN: usize = 63;
/// Hex digits of the hash that ends an identifier whose plain form is too long (64 bits).
const HASH_HEX: usize = 16;

/// The identifier of a database and of its role.
///
/// # Contract
/// At most [`MAX_LEN`] bytes of `[a-z0-9_-]`, starting with [`PREFIX`]. Different
/// `(owner, name)` pairs give different identifiers: the plain form `kws_<owner>_<name>` has
/// exactly two underscores and splits back into its labels (labels have none); a pair too long
/// for it gets `kws_<owner prefix>_<name prefix>_<hash of both>`, three underscores, so the
/// two forms never meet, and two long pairs meet only on a 64-bit hash collision (which the
/// catalogue's unique index turns into an error, never a shared database).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct PgIdent(String);

impl PgIdent {
    pub(crate) fn derive(owner: &OwnerId, name: &DnsLabel) -> Self {
        let (owner, name) = (owner.as_str(), name.as_str());
        let plain = format!("{PREFIX}{owner}_{name}");
        if plain.len() <= MAX_LEN {
            return Self(plain);
        }
        let digest = Sha256::digest(format!("{owner}_{name}").as_bytes());
        let hash: String = digest.iter().take(HASH_HEX / 2).map(|b| format!("{b:02x}")).collect();
        let room = MAX_LEN - PREFIX.len() - 2 - HASH_HEX;
        let name_len = name.len().min(room - owner.len().min(room / 2));
        let owner_len = owner.len().min(room - name_len);
        // Labels are ASCII, so byte slicing is on character boundaries.
        Self(format!("{PREFIX}{}_{}_{hash}", &owner[..owner_len], &name[..name_len]))
    }

    /// The identifier, unquoted (for binding as a value, e.g. in `WHERE rolname = $1`).
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The identifier in double quotes, for splicing into SQL.
    pub(crate) fn quoted(&self) -> String {
        quote_ident(&self.0)
    }
}

impl fmt::Display for PgIdent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PgIdent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgIdent({})", self.0)
    }
}

/// `raw` as a double-quoted SQL identifier (inner quotes doubled).
pub(crate) fn quote_ident(raw: &str) -> String {
    format!("\"{}\"", raw.replace('"', "\"\""))
}

/// `raw` as an escape-string literal: correct whatever `standard_conforming_strings` says.
pub(crate) fn quote_literal(raw: &str) -> String {
    format!("E'{}'", raw.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn ident(owner: &str, name: &str) -> PgIdent {
        PgIdent::derive(&owner.parse().expect("owner"), &name.parse().expect("name"))
    }

    #[test]
    fn short_pairs_keep_their_plain_form() {
        assert_eq!(ident("alice", "shop").as_str(), "kws_alice_shop");
        assert_eq!(ident("alice", "shop").quoted(), "\"kws_alice_shop\"");
    }

    #[test]
    fn hyphens_cannot_make_two_pairs_meet() {
        assert_ne!(ident("a-b", "c"), ident("a", "b-c"));
        assert_ne!(ident("ab", "c"), ident("a", "bc"));
    }

    #[test]
    fn long_pairs_are_hashed_within_the_limit_and_stay_distinct() {
        let owner = "o".repeat(63);
        let mut seen = HashSet::new();
        for name in ["a".repeat(63), format!("{}b", "a".repeat(62)), "short".into()] {
            let id = ident(&owner, &name);
            assert!(id.as_str().len() <= MAX_LEN, "{id:?}");
            assert!(id.as_str().starts_with(PREFIX));
            assert_eq!(id.as_str().matches('_').count(), 3, "{id:?}");
            assert!(seen.insert(id));
        }
        // Exactly at the limit: still plain.
        let owner = "o".repeat(MAX_LEN - PREFIX.len() - 2);
        assert_eq!(ident(&owner, "x").as_str().len(), MAX_LEN);
        assert_eq!(ident(&owner, "x").as_str().matches('_').count(), 2);
    }

    #[test]
    fn every_identifier_is_plain_ascii() {
        let id = ident("z9-".repeat(20).trim_end_matches('-'), "n-1");
        assert!(
            id.as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        );
    }

    #[test]
    fn quoting_doubles_what_would_end_the_token() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's \\"), "E'it''s \\\\'");
    }
}
