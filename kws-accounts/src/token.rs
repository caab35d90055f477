//! What an API token may do: its scopes.

use std::fmt;

use crate::Error;

/// One scope of an API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TokenScope {
    /// Read what the user may read.
    Read,
    /// Create, change and remove what the user may (also reads).
    Write,
    /// Submit code-execution jobs (also reads).
    Exec,
}

impl TokenScope {
    /// Every scope.
    pub const ALL: [TokenScope; 3] = [TokenScope::Read, TokenScope::Write, TokenScope::Exec];

    /// The scope's name: `read`, `write` or `exec`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Write => "write",
            TokenScope::Exec => "exec",
        }
    }

    fn bit(self) -> u8 {
        match self {
            TokenScope::Read => 1,
            TokenScope::Write => 2,
            TokenScope::Exec => 4,
        }
    }
}

/// A set of scopes. Never empty once parsed; `Write` and `Exec` imply `Read`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenScopes(u8);

impl TokenScopes {
    /// Every scope: what a dashboard session may do.
    pub fn all() -> Self {
        Self(7)
    }

    /// The given scopes (with `Read` added when `Write` or `Exec` is there); an error when
    /// `scopes` is empty.
    pub fn of(scopes: &[TokenScope]) -> Result<Self, Error> {
        if scopes.is_empty() {
            return Err(Error::Invalid {
                field: "scopes",
                reason: "at least one of read, write, exec".into(),
            });
        }
        Ok(Self(scopes.iter().fold(TokenScope::Read.bit(), |b, s| b | s.bit())))
    }

    /// Parses names separated by commas or spaces (`read,write`); an error naming the
    /// unknown one.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let mut scopes = Vec::new();
        for name in raw.split([',', ' ']).filter(|s| !s.is_empty()) {
            let scope = TokenScope::ALL.into_iter().find(|s| s.as_str() == name);
            scopes.push(scope.ok_or_else(|| Error::Invalid {
                field: "scopes",
                reason: format!("{:?} is not one of read, write, exec", name),
            })?);
        }
        Self::of(&scopes)
    }

    /// Whether the set holds `scope`.
    pub fn has(self, scope: TokenScope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// The scopes, in the order of [`TokenScope::ALL`].
    pub fn iter(self) -> impl Iterator<Item = TokenScope> {
        TokenScope::ALL.into_iter().filter(move |s| self.has(*s))
    }

    /// The scopes' names, in order.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(TokenScope::as_str).collect()
    }
}

impl fmt::Debug for TokenScopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

impl fmt::Display for TokenScopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

/// A token's name: 1 to 64 characters, no control characters, no spaces at either end.
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    let chars = name.chars().count();
    if chars == 0 || chars > 64 || name.chars().any(char::is_control) || name.trim() != name {
        return Err(Error::Invalid {
            field: "name",
            reason: format!(
                "{name:?}: a token's name is 1 to 64 printable characters, not starting or \
                 ending with a space"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_imply_read() {
        let s = TokenScopes::parse("exec").expect("parse");
        assert_eq!(s.names(), ["read", "exec"]);
        assert_eq!(TokenScopes::parse("read, write").expect("parse").to_string(), "read,write");
        assert!(TokenScopes::parse("").is_err());
        let e = TokenScopes::parse("read,admin").expect_err("admin");
        assert!(e.to_string().contains("\"admin\""), "{e}");
    }
}
