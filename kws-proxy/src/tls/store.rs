//! Certificate files: written atomically with mode 0600, read back for their expiry.

use std::{
    io::Write as _,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::{CertFiles, tls::TlsError};

/// What the stored certificate is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The end of the leaf's validity.
    pub not_after: SystemTime,
    /// The leaf's serial number, hexadecimal.
    pub serial: String,
    /// The leaf's DNS names.
    pub names: Vec<String>,
}

/// Writes `text` to `path` with mode 0600 through a temporary file and a rename.
pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), TlsError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let io = |action: &'static str, p: &Path| {
        let path = p.to_path_buf();
        move |source| TlsError::Io { action, path, source }
    };
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    file.write_all(text.as_bytes()).map_err(io("write", &tmp))?;
    file.sync_all().map_err(io("sync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename to", path))
}

/// Stores a new key and chain: both written to temporary files first, then renamed (key
/// first), so a failure leaves the previous pair in place.
pub(crate) fn store(files: &CertFiles, key_pem: &str, chain_pem: &str) -> Result<(), TlsError> {
    if let Some(dir) = files.chain.parent() {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
            action: "create",
            path: dir.into(),
            source,
        })?;
    }
    info_of_pem(&files.chain, chain_pem)?;
    write_private(&files.key, key_pem)?;
    write_private(&files.chain, chain_pem)
}

/// The stored certificate, or `None` if there is none yet.
pub(crate) fn read(files: &CertFiles) -> Result<Option<CertInfo>, TlsError> {
    match std::fs::read_to_string(&files.chain) {
        Ok(pem) => info_of_pem(&files.chain, &pem).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlsError::Io { action: "read", path: files.chain.clone(), source }),
    }
}

/// Parses the first certificate of a PEM chain.
pub(crate) fn info_of_pem(path: &Path, pem: &str) -> Result<CertInfo, TlsError> {
    let bad = |why: String| TlsError::BadCertificate { path: path.to_path_buf(), why };
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| bad(format!("no PEM certificate: {e}")))?;
    let cert = block.parse_x509().map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
    let secs = cert.validity().not_after.timestamp();
    let not_after = u64::try_from(secs)
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
        .map_err(|_| bad(format!("notAfter {secs} is before 1970")))?;
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CertInfo { not_after, serial: cert.raw_serial_as_string(), names })
}
