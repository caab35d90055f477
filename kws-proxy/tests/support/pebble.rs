//! pebble and pebble-challtestsrv (kws-testenv's), with the issuer configuration the tests
//! use against them.

use std::{ops::Deref, path::PathBuf};

/// A running pebble (kws_testenv::Pebble) with its folder.
pub struct Pebble {
    pebble: kws_testenv::Pebble,
    pub dir: tempfile::TempDir,
}

impl Deref for Pebble {
    type Target = kws_testenv::Pebble;

    fn deref(&self) -> &kws_testenv::Pebble {
        &self.pebble
    }
}

impl Pebble {
    /// Starts pebble, or skips loudly (fails under KWS_TEST_REQUIRE=1) if it is absent.
    pub fn start() -> Option<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        let pebble = kws_testenv::Pebble::start(dir.path())?;
        Some(Self { pebble, dir })
    }

    /// pebble's issuing root, written to `roots.pem`.
    pub async fn root(&self) -> PathBuf {
        let pebble = &self.pebble;
        tokio::task::block_in_place(|| pebble.root())
    }
}

#[cfg(feature = "acme")]
impl Pebble {
    /// An issuer configuration for `example.test` against this pebble: account in
    /// `dir/account.json`, certificate in `files`, renewal 30 days before expiry.
    pub fn issuer_config(
        &self,
        dir: &std::path::Path,
        files: kws_proxy::CertFiles,
    ) -> kws_proxy::tls::IssuerConfig {
        kws_proxy::tls::IssuerConfig {
            directory_url: self.directory.clone(),
            acme_server_root: Some(self.tls_root.clone()),
            domain: "example.test".parse().expect("domain"),
            contact: vec!["mailto:ops@example.test".into()],
            account_file: dir.join("account.json"),
            files,
            renew_within: kws_proxy::tls::IssuerConfig::days(30),
            propagation_delay: std::time::Duration::ZERO,
            order_timeout: std::time::Duration::from_secs(60),
        }
    }
}
