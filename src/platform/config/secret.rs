//! Secrets in the configuration: read from the environment or a file the config names, never
//! from the config itself, and never printed back.

use std::fmt;

/// A secret value. `Debug` shows `Secret(redacted)`; only [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// Where a secret comes from (its `Debug` names the variable or the file, never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable.
    Env(String),
    /// A file (its content, with a trailing newline dropped).
    File(std::path::PathBuf),
}

impl SecretSource {
    /// Reads the secret; the error says where it looked, not what it found.
    pub fn read(&self) -> Result<Secret, String> {
        let value = match self {
            SecretSource::Env(var) => std::env::var(var)
                .map_err(|_| format!("the environment variable {var} is not set (or not UTF-8)"))?,
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("{} cannot be read: {e}", path.display()))?,
        };
        let value = value.strip_suffix('\n').unwrap_or(&value).trim_end_matches('\r').to_owned();
        if value.is_empty() {
            return Err("the secret is empty".to_owned());
        }
        Ok(Secret(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(redacted)");
        assert!(!format!("{:?}", Some(&secret)).contains("hunter2"));
        assert_eq!(secret.expose(), "hunter2");
    }
}
