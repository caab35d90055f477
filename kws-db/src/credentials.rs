//! What `create` hands back (credentials, with a password that never shows in logs) and what
//! `list` reports.

use std::{fmt, net::IpAddr};

use chrono::{DateTime, Utc};
use kws_core::{DnsLabel, OwnerId};
use rand::{Rng, distr::Alphanumeric};

/// A database password. `Debug` and `Display` never show it; [`Password::expose`] does.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Length of generated passwords: 32 characters of 62, about 190 bits.
    pub const GENERATED_LEN: usize = 32;

    /// A new random password from the thread-local CSPRNG: [`Self::GENERATED_LEN`] ASCII letters
    /// and digits (no character needs escaping anywhere, and SASLprep leaves it unchanged).
    pub fn generate() -> Self {
        let rng = rand::rng();
        Self(rng.sample_iter(Alphanumeric).take(Self::GENERATED_LEN).map(char::from).collect())
    }

    /// The password itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// How a tenant connects to its database.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The server's host name or address, as tenants reach it.
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// The database's name on the server.
    pub database: String,
    /// The login role.
    pub role: String,
    /// The role's password.
    pub password: Password,
}

impl Credentials {
    /// The connection URL, `postgres://role:password@host:port/database`, every part
    /// percent-encoded (an IPv6 host in brackets).
    pub fn url(&self) -> String {
        let mut out = String::from("postgres://");
        out.push_str(&encode(&self.role));
        out.push(':');
        out.push_str(&encode(self.password.expose()));
        out.push('@');
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => out.push_str(&format!("[{v6}]")),
            _ => out.push_str(&encode(&self.host)),
        }
        out.push_str(&format!(":{}/", self.port));
        out.push_str(&encode(&self.database));
        out
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so the result is valid as
/// user, password, host or path segment.
fn encode(part: &str) -> String {
    url::form_urlencoded::byte_serialize(part.as_bytes())
        // form encoding writes a space as '+', which a URL's user or path does not decode.
        .map(|piece| if piece == "+" { "%20" } else { piece })
        .collect()
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("role", &self.role)
            .field("password", &self.password)
            .finish()
    }
}

/// One database of an owner, as the provisioner's bookkeeping records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseInfo {
    /// Its owner.
    pub owner: OwnerId,
    /// Its name, as the owner gave it.
    pub name: DnsLabel,
    /// Its name on the server (also the name of its role).
    pub database: String,
    /// Its login role.
    pub role: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(host: &str, password: &str) -> Credentials {
        Credentials {
            host: host.into(),
            port: 5432,
            database: "kws_alice_shop".into(),
            role: "kws_alice_shop".into(),
            password: Password(password.into()),
        }
    }

    #[test]
    fn url_percent_encodes_every_part() {
        assert_eq!(
            creds("db.example", "p@ss:/ w?#%").url(),
            "postgres://kws_alice_shop:p%40ss%3A%2F%20w%3F%23%25@db.example:5432/kws_alice_shop"
        );
        assert_eq!(
            creds("::1", "x").url(),
            "postgres://kws_alice_shop:x@[::1]:5432/kws_alice_shop"
        );
    }

    #[test]
    fn url_round_trips_through_a_parser() {
        let c = creds("127.0.0.1", "a b@c:d/e");
        let parsed = url::Url::parse(&c.url()).expect("valid URL");
        let password = parsed.password().expect("has a password");
        let decoded = url::form_urlencoded::parse(format!("x={password}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned());
        assert_eq!(decoded.as_deref(), Some("a b@c:d/e"));
        assert_eq!(parsed.path(), "/kws_alice_shop");
    }

    #[test]
    fn generated_passwords_are_long_random_and_never_printed() {
        let a = Password::generate();
        let b = Password::generate();
        assert_eq!(a.expose().len(), Password::GENERATED_LEN);
        assert!(a.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        let shown = format!("{:?}", creds("h", a.expose()));
        assert!(!shown.contains(a.expose()), "{shown}");
    }
}
