//! Secrets: passwords, session cookies and API tokens as the caller gave them, and their
//! SHA-256 digests as the stores keep them.

use std::fmt;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

/// A secret in clear: a password, a session cookie's value, an API token. `Debug` and
/// `Display` print `<redacted>`; only [`Secret::expose`] gives the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret received from a caller.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// 256 random bits from a CSPRNG seeded by the operating system (`rand::rng`), as `prefix` followed by 43
    /// characters of URL-safe base64 (no padding).
    pub fn generate(prefix: &str) -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The secret's text.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 digest stores keep instead of the secret (for random secrets only: a
    /// password is hashed with argon2id instead).
    pub fn digest(&self) -> SecretHash {
        SecretHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The SHA-256 digest of a random secret: what a store looks a session or a token up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash(pub [u8; 32]);

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_distinct_and_redacted() {
        let (a, b) = (Secret::generate("kws_"), Secret::generate("kws_"));
        assert_ne!(a, b);
        assert!(a.expose().starts_with("kws_"));
        assert_eq!(a.expose().len(), 4 + 43);
        assert_eq!(format!("{a:?} {a}"), "Secret(<redacted>) <redacted>");
        assert_eq!(a.digest(), Secret::new(a.expose()).digest());
        assert_ne!(a.digest(), b.digest());
    }
}
