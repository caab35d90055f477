//! X25519 keys: the private key, the public key derived from it, and the optional preshared key.
//! Base64 in and out (as `wg` prints them), hex on the UAPI socket. Private material is zeroized
//! on drop and never shown by `Debug` or `Display`.

use std::{fmt, str::FromStr};

use base64::{Engine, engine::general_purpose::STANDARD};
use rand::{TryRngCore, rngs::OsRng};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of every WireGuard key, in bytes.
pub const KEY_LEN: usize = 32;

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not valid base64 (this includes stray whitespace and line breaks).
    #[error("{what} is not valid base64 ({len} characters given): {reason}")]
    Base64 {
        /// Which kind of key.
        what: &'static str,
        /// How many characters were given (the value itself is never echoed).
        len: usize,
        /// What the decoder said.
        reason: String,
    },
    /// Not valid hex (UAPI form).
    #[error("{what} is not 64 hex digits ({len} characters given)")]
    Hex {
        /// Which kind of key.
        what: &'static str,
        /// How many characters were given.
        len: usize,
    },
    /// Decoded to the wrong number of bytes.
    #[error("{what} must be {KEY_LEN} bytes, got {got}")]
    Length {
        /// Which kind of key.
        what: &'static str,
        /// The decoded length.
        got: usize,
    },
    /// The operating system's random source failed.
    #[error("no OS randomness: {0}")]
    Randomness(String),
}

fn random_bytes() -> Result<[u8; KEY_LEN], KeyError> {
    let mut bytes = [0u8; KEY_LEN];
    OsRng.try_fill_bytes(&mut bytes).map_err(|e| KeyError::Randomness(e.to_string()))?;
    Ok(bytes)
}

fn decode_base64(what: &'static str, raw: &str) -> Result<[u8; KEY_LEN], KeyError> {
    let mut bytes = STANDARD.decode(raw).map_err(|e| KeyError::Base64 {
        what,
        len: raw.chars().count(),
        reason: e.to_string(),
    })?;
    let out = <[u8; KEY_LEN]>::try_from(bytes.as_slice())
        .map_err(|_| KeyError::Length { what, got: bytes.len() });
    bytes.zeroize();
    out
}

fn decode_hex(what: &'static str, raw: &str) -> Result<[u8; KEY_LEN], KeyError> {
    let fail = || KeyError::Hex { what, len: raw.len() };
    if raw.len() != KEY_LEN * 2 {
        return Err(fail());
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; KEY_LEN];
    for (byte, pair) in out.iter_mut().zip(raw.as_bytes().chunks_exact(2)) {
        *byte = (nibble(pair[0]).ok_or_else(fail)? << 4) | nibble(pair[1]).ok_or_else(fail)?;
    }
    Ok(out)
}

fn encode_hex(bytes: &[u8; KEY_LEN]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(KEY_LEN * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// A peer's public key. Cheap to copy; the identity of a peer everywhere in kws.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    const WHAT: &'static str = "public key";

    /// From its 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Parses the base64 form (44 characters, no whitespace).
    pub fn from_base64(raw: &str) -> Result<Self, KeyError> {
        decode_base64(Self::WHAT, raw).map(Self)
    }

    /// Parses the UAPI hex form.
    pub fn from_hex(raw: &str) -> Result<Self, KeyError> {
        decode_hex(Self::WHAT, raw).map(Self)
    }

    /// The base64 form.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The UAPI hex form.
    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_base64(s)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

/// A private key (a clamped X25519 scalar). Zeroized on drop; `Debug` shows only its public key
/// and there is no `Display`: the secret leaves only through `to_base64`/`to_hex`, on purpose.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PrivateKey([u8; KEY_LEN]);

impl PrivateKey {
    const WHAT: &'static str = "private key";

    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        random_bytes().map(Self::from_bytes)
    }

    /// From 32 bytes (clamped as X25519 requires, as `wg genkey` does).
    pub fn from_bytes(mut bytes: [u8; KEY_LEN]) -> Self {
        bytes[0] &= 248;
        bytes[31] = (bytes[31] & 127) | 64;
        let key = Self(bytes);
        bytes.zeroize();
        key
    }

    /// Parses the base64 form.
    pub fn from_base64(raw: &str) -> Result<Self, KeyError> {
        decode_base64(Self::WHAT, raw).map(Self::from_bytes)
    }

    /// Parses the UAPI hex form.
    pub fn from_hex(raw: &str) -> Result<Self, KeyError> {
        decode_hex(Self::WHAT, raw).map(Self::from_bytes)
    }

    /// The public key of this private key.
    pub fn public_key(&self) -> PublicKey {
        let secret = x25519_dalek::StaticSecret::from(self.0);
        PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
    }

    /// The base64 form: secret material, for a client config only.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The UAPI hex form: secret material, for the device socket only.
    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }
}

impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        // Not constant time, but it compares public keys: nothing secret leaks through timing.
        self.public_key() == other.public_key()
    }
}

impl Eq for PrivateKey {}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(public {})", self.public_key())
    }
}

/// A preshared key (an extra symmetric layer against a future break of X25519). Zeroized on
/// drop; never shown by `Debug`; no `Display`. On the UAPI wire an all-zero key means "none":
/// `from_hex` maps it to `None`, and a peer without a key is sent as all zeros.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct PresharedKey([u8; KEY_LEN]);

impl PresharedKey {
    const WHAT: &'static str = "preshared key";

    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        random_bytes().map(Self)
    }

    /// Parses the base64 form.
    pub fn from_base64(raw: &str) -> Result<Self, KeyError> {
        decode_base64(Self::WHAT, raw).map(Self)
    }

    /// Parses the UAPI hex form; `None` for the all-zero key, which means "no preshared key".
    pub fn from_hex(raw: &str) -> Result<Option<Self>, KeyError> {
        let bytes = decode_hex(Self::WHAT, raw)?;
        Ok((bytes != [0; KEY_LEN]).then_some(Self(bytes)))
    }

    /// The base64 form: secret material.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The UAPI hex form: secret material.
    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }

    /// The UAPI hex form of "no preshared key" (all zeros).
    pub fn none_hex() -> String {
        encode_hex(&[0; KEY_LEN])
    }
}

impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresharedKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_round_trips_and_matches_wg_pubkey_math() {
        let private = PrivateKey::generate().expect("randomness");
        let again = PrivateKey::from_base64(&private.to_base64()).expect("base64");
        assert_eq!(again.public_key(), private.public_key());
        let public = private.public_key();
        assert_eq!(PublicKey::from_base64(&public.to_base64()), Ok(public));
        assert_eq!(PublicKey::from_hex(&public.to_hex()), Ok(public));
        assert_eq!(public.to_base64().len(), 44);
    }

    #[test]
    fn rfc7748_test_vector() {
        // RFC 7748 section 6.1: Alice's private and public keys.
        let alice =
            decode_hex("t", "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                .expect("hex");
        let public = PrivateKey::from_bytes(alice).public_key();
        assert_eq!(
            public.to_hex(),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let private = PrivateKey::generate().expect("randomness");
        let psk = PresharedKey::generate().expect("randomness");
        let shown = format!("{private:?} {psk:?}");
        assert!(!shown.contains(&private.to_base64()));
        assert!(!shown.contains(&psk.to_base64()));
        assert!(shown.contains(&private.public_key().to_base64()));
    }

    #[test]
    fn malformed_keys_are_typed_errors() {
        let good = PrivateKey::generate().expect("randomness").public_key().to_base64();
        for bad in [
            String::new(),
            format!(" {good}"),
            format!("{good}\n"),
            format!("{}!", &good[..43]),
            good[..40].to_owned(),
            "AAAA".to_owned(),
            format!("{good}AAAA"),
            "'; DROP TABLE peers; --".to_owned(),
        ] {
            let err = PublicKey::from_base64(&bad).expect_err(&bad);
            assert!(matches!(err, KeyError::Base64 { .. } | KeyError::Length { .. }), "{err}");
            assert!(PrivateKey::from_base64(&bad).is_err());
            assert!(PresharedKey::from_base64(&bad).is_err());
        }
        assert!(matches!(PublicKey::from_hex("zz"), Err(KeyError::Hex { .. })));
        assert!(matches!(PublicKey::from_hex(&"g".repeat(64)), Err(KeyError::Hex { .. })));
        assert_eq!(PresharedKey::from_hex(&PresharedKey::none_hex()), Ok(None));
    }
}
