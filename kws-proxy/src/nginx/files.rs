//! Atomic file writes (temporary file, then rename) and their undo.

use std::path::{Path, PathBuf};

use crate::ProxyError;

/// Writes `text` to `path` through `path` + `.tmp` and a rename.
pub(crate) async fn write_atomic(path: &Path, text: &str) -> Result<(), ProxyError> {
    let tmp = tmp_path(path);
    tokio::fs::write(&tmp, text).await.map_err(ProxyError::io("write", &tmp))?;
    rename(&tmp, path).await
}

/// Renames `from` to `to`, removing `from` if the rename fails.
pub(crate) async fn rename(from: &Path, to: &Path) -> Result<(), ProxyError> {
    if let Err(e) = tokio::fs::rename(from, to).await {
        let _ = tokio::fs::remove_file(from).await;
        return Err(ProxyError::io("rename to", to)(e));
    }
    Ok(())
}

/// `path` with `.tmp` appended: never matched by the `*.conf` include.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Removes `path`; a missing file is fine.
pub(crate) async fn remove(path: &Path) -> Result<(), ProxyError> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(ProxyError::io("remove", path)(e))
        }
        _ => Ok(()),
    }
}

/// One file changed by a transaction, with what it held before.
#[derive(Debug)]
pub(crate) struct Change {
    pub(crate) path: PathBuf,
    pub(crate) previous: Option<String>,
}

impl Change {
    /// Puts the previous content back (or removes a file that did not exist).
    pub(crate) async fn undo(&self) -> Result<(), ProxyError> {
        match &self.previous {
            Some(text) => write_atomic(&self.path, text).await,
            None => remove(&self.path).await,
        }
    }
}
