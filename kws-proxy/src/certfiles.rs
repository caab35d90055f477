//! `CertFiles`: where the wildcard certificate lives (written by `tls`, served by `nginx`).

use std::path::PathBuf;

/// The wildcard certificate every TLS route serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate chain, PEM, leaf first.
    pub chain: PathBuf,
    /// The private key, PEM (mode 0600).
    pub key: PathBuf,
}
