//! The state file: the desired state saved as TOML (or JSON, by extension), read back and
//! validated as a whole before anything uses it.

use std::path::Path;

use crate::{HostNetSpec, HostNetState, StateError};

impl HostNetState {
    /// Parses and validates a TOML document.
    pub fn from_toml(text: &str) -> Result<Self, StateError> {
        let spec: HostNetSpec = toml::from_str(text)
            .map_err(|e| StateError::File { path: "<toml>".into(), message: e.to_string() })?;
        Self::new(spec)
    }

    /// The state as a TOML document.
    pub fn to_toml(&self) -> String {
        // Serializing plain data with string keys cannot fail; fall back to JSON just in case.
        toml::to_string_pretty(self.spec()).unwrap_or_else(|_| self.to_json())
    }

    /// The state as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self.spec()).unwrap_or_default()
    }

    /// Reads a state file (`.json` as JSON, anything else as TOML) and validates it.
    pub fn load(path: &Path) -> Result<Self, StateError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| StateError::File { path: shown.clone(), message: e.to_string() })?;
        let spec: HostNetSpec = if is_json(path) {
            serde_json::from_str(&text)
                .map_err(|e| StateError::File { path: shown, message: e.to_string() })?
        } else {
            toml::from_str(&text)
                .map_err(|e| StateError::File { path: shown, message: e.to_string() })?
        };
        Self::new(spec)
    }

    /// Writes the state file atomically (a temporary file in the same folder, then a rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let text = if is_json(path) { self.to_json() } else { self.to_toml() };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }
}

fn is_json(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json")
}
