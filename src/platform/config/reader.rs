//! A typed walk over one TOML section: each read names its section and key, so a bad value is
//! one error naming the section, the key and the value; a key nobody reads is an error too.

use std::{cell::RefCell, path::PathBuf, str::FromStr, time::Duration};

use toml::{Table, Value};

use super::{ConfigError, secret::SecretSource};

/// One section of the file (`[store]`), or an empty one when the file has none.
pub(crate) struct Section<'a> {
    name: &'static str,
    table: Option<&'a Table>,
    read: RefCell<Vec<String>>,
}

impl<'a> Section<'a> {
    /// The section `name` of `root`; an error when it is there but not a table.
    pub(crate) fn of(root: &'a Table, name: &'static str) -> Result<Self, ConfigError> {
        let table = match root.get(name) {
            None => None,
            Some(Value::Table(table)) => Some(table),
            Some(other) => {
                return Err(ConfigError::value(name, "", shown(other), "a [section] table"));
            }
        };
        Ok(Self { name, table, read: RefCell::new(Vec::new()) })
    }

    /// The section's name.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    fn raw(&self, key: &str) -> Option<&'a Value> {
        self.read.borrow_mut().push(key.to_owned());
        self.table.and_then(|t| t.get(key))
    }

    fn bad(&self, key: &str, value: &Value, expected: impl Into<String>) -> ConfigError {
        ConfigError::value(self.name, key, shown(value), expected)
    }

    /// A string.
    pub(crate) fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.bad(key, other, "a string")),
        }
    }

    /// A string parsed as `T`; `expected` says what the key takes.
    pub(crate) fn parse<T>(&self, key: &str, expected: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let Some(raw) = self.string(key)? else { return Ok(None) };
        raw.parse::<T>().map(Some).map_err(|e| {
            ConfigError::value(self.name, key, quoted(&raw), format!("{expected} ({e})"))
        })
    }

    /// One of `choices`.
    pub(crate) fn choice(
        &self,
        key: &str,
        choices: &[&'static str],
    ) -> Result<Option<&'static str>, ConfigError> {
        let Some(raw) = self.string(key)? else { return Ok(None) };
        choices.iter().copied().find(|c| *c == raw).map(Some).ok_or_else(|| {
            ConfigError::value(
                self.name,
                key,
                quoted(&raw),
                format!("one of {}", choices.join(", ")),
            )
        })
    }

    /// A boolean.
    pub(crate) fn boolean(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(*b)),
            Some(other) => Err(self.bad(key, other, "true or false")),
        }
    }

    /// An integer in `min..=max`.
    pub(crate) fn integer(
        &self,
        key: &str,
        min: u64,
        max: u64,
    ) -> Result<Option<u64>, ConfigError> {
        match self.raw(key) {
            None => Ok(None),
            Some(value @ Value::Integer(i)) => match u64::try_from(*i) {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(self.bad(key, value, format!("an integer from {min} to {max}"))),
            },
            Some(other) => Err(self.bad(key, other, format!("an integer from {min} to {max}"))),
        }
    }

    /// A number (integer or float) in `min..=max`.
    pub(crate) fn number(&self, key: &str, min: f64, max: f64) -> Result<Option<f64>, ConfigError> {
        let value = match self.raw(key) {
            None => return Ok(None),
            Some(value) => value,
        };
        let n = match value {
            Value::Integer(i) => *i as f64,
            Value::Float(f) => *f,
            other => return Err(self.bad(key, other, format!("a number from {min} to {max}"))),
        };
        if n.is_finite() && (min..=max).contains(&n) {
            Ok(Some(n))
        } else {
            Err(self.bad(key, value, format!("a number from {min} to {max}")))
        }
    }

    /// A duration: a number and a unit (`250ms`, `30s`, `5m`, `2h`, `7d`).
    pub(crate) fn duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        let Some(raw) = self.string(key)? else { return Ok(None) };
        parse_duration(&raw).map(Some).ok_or_else(|| {
            ConfigError::value(
                self.name,
                key,
                quoted(&raw),
                "a duration such as 250ms, 30s, 5m, 2h or 7d",
            )
        })
    }

    /// A size in bytes: a number and a unit (`512MiB`, `1GiB`, `64KiB`, `100MB`), or bytes.
    pub(crate) fn bytes(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        let Some(raw) = self.string(key)? else { return Ok(None) };
        parse_bytes(&raw).map(Some).ok_or_else(|| {
            ConfigError::value(self.name, key, quoted(&raw), "a size such as 512MiB, 1GiB or 100MB")
        })
    }

    /// A list of strings, each parsed as `T`.
    pub(crate) fn list<T>(&self, key: &str, expected: &str) -> Result<Option<Vec<T>>, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let items = match self.raw(key) {
            None => return Ok(None),
            Some(Value::Array(items)) => items,
            Some(other) => return Err(self.bad(key, other, format!("a list of {expected}"))),
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Value::String(raw) = item else {
                return Err(self.bad(key, item, format!("a list of {expected}")));
            };
            out.push(raw.parse::<T>().map_err(|e| {
                ConfigError::value(self.name, key, quoted(raw), format!("{expected} ({e})"))
            })?);
        }
        Ok(Some(out))
    }

    /// A path.
    pub(crate) fn path(&self, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.string(key)?.map(PathBuf::from))
    }

    /// A secret: `<name>_env` (an environment variable) or `<name>_file` (a file), at most one
    /// of them. The secret's value is never part of an error.
    pub(crate) fn secret(&self, name: &str) -> Result<Option<SecretSource>, ConfigError> {
        let env = self.string(&format!("{name}_env"))?;
        let file = self.path(&format!("{name}_file"))?;
        match (env, file) {
            (Some(_), Some(_)) => Err(ConfigError::value(
                self.name,
                &format!("{name}_env"),
                "(both)".to_owned(),
                format!("either {name}_env or {name}_file, not both"),
            )),
            (Some(var), None) => Ok(Some(SecretSource::Env(var))),
            (None, Some(path)) => Ok(Some(SecretSource::File(path))),
            (None, None) => Ok(None),
        }
    }

    /// A value that must be there.
    pub(crate) fn required<T>(
        &self,
        key: &str,
        value: Option<T>,
        expected: &str,
    ) -> Result<T, ConfigError> {
        value.ok_or_else(|| {
            ConfigError::value(self.name, key, "(missing)".to_owned(), expected.to_owned())
        })
    }

    /// Fails on the first key of the section that no read asked for (a typo).
    pub(crate) fn finish(self) -> Result<(), ConfigError> {
        let Some(table) = self.table else { return Ok(()) };
        let read = self.read.borrow();
        match table.iter().find(|(key, _)| !read.iter().any(|r| r == *key)) {
            Some((key, value)) => {
                Err(ConfigError::value(self.name, key, shown(value), "no such key in this section"))
            }
            None => Ok(()),
        }
    }
}

/// A TOML value as an error shows it: escaped, cut at 80 characters.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => quoted(s),
        other => cut(&other.to_string()),
    }
}

fn quoted(raw: &str) -> String {
    cut(&format!("\"{}\"", raw.escape_debug()))
}

fn cut(s: &str) -> String {
    const MAX: usize = 80;
    match s.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

pub(crate) fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (number, unit) = raw.split_at(split);
    let n: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 0.0 && seconds < 1e10)
        .then(|| Duration::from_secs_f64(seconds))
}

pub(crate) fn parse_bytes(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let n: u64 = number.parse().ok()?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return None,
    };
    n.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        for bad in ["", "5", "s", "5 parsecs", "-1s", "1e400s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(parse_bytes("1GiB"), Some(1 << 30));
        assert_eq!(parse_bytes("100MB"), Some(100_000_000));
        assert_eq!(parse_bytes("512"), Some(512));
        for bad in ["", "GiB", "1 XB", "99999999999999999999TiB", "-1"] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
    }
}
