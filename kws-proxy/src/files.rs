//! Atomic file writes (temporary file, then rename) and their undo, and the writer lock of kws's
//! folder.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use crate::ProxyError;

/// Writes `text` to `path` through `path` + `.tmp` and a rename; a `private` file is created
/// with mode 0600 (never readable by others, not even for a moment).
pub(crate) async fn write_atomic(path: &Path, text: &str, private: bool) -> Result<(), ProxyError> {
    let tmp = tmp_path(path);
    remove(&tmp).await?;
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true).mode(if private { 0o600 } else { 0o644 });
    let written = async {
        let mut file = options.open(&tmp).await?;
        file.write_all(text.as_bytes()).await?;
        file.sync_all().await
    }
    .await;
    if let Err(e) = written {
        let _ = remove(&tmp).await;
        return Err(ProxyError::io("write", tmp)(e));
    }
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

/// `path` with `.tmp` appended.
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

/// The text of `path`, or `None` if there is no such file.
#[cfg(feature = "nginx")]
pub(crate) async fn read_if_exists(path: &Path) -> Result<Option<String>, ProxyError> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ProxyError::io("read", path)(e)),
    }
}

/// Flushes the folder of `path` to disk, so a file created or renamed there survives a crash.
pub(crate) async fn sync_parent(path: &Path) -> Result<(), ProxyError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let handle = tokio::fs::File::open(dir).await.map_err(ProxyError::io("open", dir))?;
    handle.sync_all().await.map_err(ProxyError::io("sync", dir))
}

/// One file changed by a transaction, with what it held before.
#[cfg(feature = "nginx")]
#[derive(Debug)]
pub(crate) struct Change {
    pub(crate) path: PathBuf,
    pub(crate) previous: Option<String>,
    pub(crate) private: bool,
}

#[cfg(feature = "nginx")]
impl Change {
    /// Puts the previous content back (or removes a file that did not exist).
    pub(crate) async fn undo(&self) -> Result<(), ProxyError> {
        match &self.previous {
            Some(text) => write_atomic(&self.path, text, self.private).await,
            None => remove(&self.path).await,
        }
    }
}

/// Undoes `changes`, newest first, logging what cannot be undone.
#[cfg(feature = "nginx")]
pub(crate) async fn undo_all(changes: &[Change]) {
    for change in changes.iter().rev() {
        if let Err(e) = change.undo().await {
            tracing::error!(path = %change.path.display(), error = %e, "undo failed");
        }
    }
}

/// The exclusive lock one writer holds on kws's folder; released when dropped, or by the kernel
/// when the process dies.
pub(crate) type FolderLock = nix::fcntl::Flock<std::fs::File>;

/// Takes the writer lock `path` (`flock`, never blocking), or says that another writer (in this
/// process or another) holds it.
pub(crate) fn lock_folder(path: &Path) -> Result<FolderLock, ProxyError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(ProxyError::io("open", path))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(
        |(_, errno)| match errno {
            nix::errno::Errno::EWOULDBLOCK => ProxyError::Locked { path: path.to_path_buf() },
            other => ProxyError::io("lock", path)(other.into()),
        },
    )
}
