//! SCRAM-SHA-256 verifiers (RFC 5802, RFC 7677), computed here so that the plain password never
//! reaches the server, its logs or `pg_stat_activity`: `CREATE ROLE ... PASSWORD '<verifier>'`
//! stores the verifier as given, whatever `password_encryption` says.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac, digest::InvalidLength};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::Password;

type HmacSha256 = Hmac<Sha256>;

/// PostgreSQL's default iteration count (`scram_iterations`).
pub(crate) const ITERATIONS: u32 = 4096;

/// The verifier of `password` with a fresh random 16-byte salt, in PostgreSQL's
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` form.
///
/// The password is used as is: SASLprep leaves generated passwords (ASCII letters and digits)
/// unchanged.
pub(crate) fn verifier(password: &Password) -> Result<String, InvalidLength> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    verifier_with(password.expose().as_bytes(), &salt, ITERATIONS)
}

fn verifier_with(password: &[u8], salt: &[u8], iterations: u32) -> Result<String, InvalidLength> {
    let salted = hi(password, salt, iterations)?;
    let client_key = hmac(&salted, b"Client Key")?;
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key")?;
    Ok(format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    ))
}

fn hmac(key: &[u8], data: &[u8]) -> Result<[u8; 32], InvalidLength> {
    let mut mac = HmacSha256::new_from_slice(key)?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().into())
}

/// `Hi()` of RFC 5802: PBKDF2-HMAC-SHA-256 with one output block.
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> Result<[u8; 32], InvalidLength> {
    let mut mac = HmacSha256::new_from_slice(password)?;
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = mac.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &u)?;
        out.iter_mut().zip(u.iter()).for_each(|(o, x)| *o ^= x);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7677, section 3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==,
    // 4096 iterations; the exchange there carries the client proof p=... and the server
    // signature v=... over the auth message below.
    #[test]
    fn matches_the_rfc_7677_example() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let salted = hi(b"pencil", &salt, 4096).expect("hi");
        let server_key = hmac(&salted, b"Server Key").expect("server key");
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let signature = hmac(&server_key, auth_message.as_bytes()).expect("signature");
        assert_eq!(STANDARD.encode(signature), "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        // The client proof p=... checks the StoredKey the server keeps.
        let client_key = hmac(&salted, b"Client Key").expect("client key");
        let stored_key = Sha256::digest(client_key);
        let client_signature = hmac(&stored_key, auth_message.as_bytes()).expect("signature");
        let proof: Vec<u8> = client_key.iter().zip(client_signature).map(|(k, s)| k ^ s).collect();
        assert_eq!(STANDARD.encode(proof), "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
    }

    #[test]
    fn has_postgresql_form_and_a_fresh_salt() {
        let password = Password::generate();
        let a = verifier(&password).expect("verifier");
        let b = verifier(&password).expect("verifier");
        assert!(a.starts_with("SCRAM-SHA-256$4096:"), "{a}");
        assert_eq!(a.matches('$').count(), 2);
        assert_ne!(a, b, "each verifier has its own salt");
    }
}
