//! Passwords: argon2id hashes in PHC strings.

use std::sync::LazyLock;

use argon2::{
    Argon2, PasswordHash, PasswordHasher as _, PasswordVerifier as _,
    password_hash::{SaltString, rand_core::OsRng},
};

use crate::{Error, Secret};

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest password accepted, in characters (argon2 takes any length; this bounds the
/// work a request can ask for).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// A hash of no password, verified against when the user has none, so that a login for an
/// unknown user takes about as long as one for a known user.
static DUMMY: LazyLock<String> =
    LazyLock::new(|| hash(&Secret::new("kws dummy password, never set")).unwrap_or_default());

/// The argon2id hash of `password` with a fresh salt and the crate's default parameters
/// (m = 19 MiB, t = 2, p = 1, as OWASP recommends). A password outside
/// 12..=1024 characters is `Invalid` naming `password`.
pub(crate) fn hash(password: &Secret) -> Result<String, Error> {
    let chars = password.expose().chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(Error::Invalid {
            field: "password",
            reason: format!(
                "{chars} characters; a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS}"
            ),
        });
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Backend { backend: "argon2", source: e.to_string().into() })
}

/// Whether `password` matches `phc`; with no hash, verifies against a dummy one and answers
/// false. A hash that does not parse answers false.
pub(crate) fn verify(phc: Option<&str>, password: &Secret) -> bool {
    let (phc, real) = match phc {
        Some(p) => (p, true),
        None => (DUMMY.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    let ok = Argon2::default().verify_password(password.expose().as_bytes(), &parsed).is_ok();
    ok && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_lengths_are_bounded() {
        let pw = Secret::new("correct horse battery");
        let phc = hash(&pw).expect("hash");
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify(Some(&phc), &pw));
        assert!(!verify(Some(&phc), &Secret::new("correct horse battery!")));
        assert!(!verify(None, &pw));
        assert!(!verify(Some("not a hash"), &pw));
        assert!(hash(&Secret::new("short")).is_err());
        assert!(hash(&Secret::new("x".repeat(1025))).is_err());
    }
}
