//! pebble and pebble-challtestsrv from Debian's `pebble` package, started by the test on free
//! loopback ports with a TLS certificate made here (the package ships none).

use std::{
    net::{Ipv4Addr, TcpListener},
    path::PathBuf,
    process::{Child, Command},
};

use super::{TestCa, wait_port};

/// A running pebble and challtestsrv; both killed on drop.
pub struct Pebble {
    children: Vec<Child>,
    /// The ACME directory URL.
    pub directory: String,
    /// challtestsrv's management API.
    pub challtestsrv: String,
    /// pebble's management API (roots, intermediates).
    pub management: String,
    /// The CA that signed pebble's own TLS certificate.
    pub tls_root: PathBuf,
    pub dir: tempfile::TempDir,
}

fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> =
        (0..N).map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind")).collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("addr").port())
}

impl Pebble {
    /// Starts both, or skips loudly (fails under KWS_TEST_REQUIRE=1) if the package is absent.
    pub fn start() -> Option<Self> {
        for bin in ["pebble", "pebble-challtestsrv"] {
            if Command::new("sh")
                .args(["-c", &format!("command -v {bin}")])
                .output()
                .map(|o| !o.status.success())
                .unwrap_or(true)
            {
                return kws_testenv::unavailable(
                    "pebble",
                    format!("{bin} is not installed (Debian package pebble)"),
                );
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new("pebble TLS test CA");
        let tls = ca.leaf(dir.path(), "pebble-tls", &["localhost", "127.0.0.1"]);
        let [acme, mgmt, http01, tlsalpn, dns, chall] = free_ports::<6>();
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{acme}"),
                "managementListenAddress": format!("127.0.0.1:{mgmt}"),
                "certificate": tls.chain,
                "privateKey": tls.key,
                "httpPort": http01,
                "tlsPort": tlsalpn,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).expect("pebble config");
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).expect("log file");
        let mut chall_child = Command::new("pebble-challtestsrv")
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{chall}")])
            .stdout(log("challtestsrv.log"))
            .spawn()
            .expect("start pebble-challtestsrv");
        let pebble_child = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("start pebble");
        let mut me = Self {
            children: vec![],
            directory: format!("https://127.0.0.1:{acme}/dir"),
            challtestsrv: format!("http://127.0.0.1:{chall}"),
            management: format!("https://127.0.0.1:{mgmt}"),
            tls_root: dir.path().join("ca.pem"),
            dir,
        };
        wait_port(chall, &mut chall_child, "pebble-challtestsrv");
        me.children.push(chall_child);
        let mut pebble_child = pebble_child;
        wait_port(acme, &mut pebble_child, "pebble");
        me.children.push(pebble_child);
        Some(me)
    }

    /// pebble's issuing root, fetched from its management API; written to `roots.pem`.
    pub async fn root(&self) -> PathBuf {
        let out = super::curl(&[
            "--cacert".into(),
            self.tls_root.display().to_string(),
            format!("{}/roots/0", self.management),
        ])
        .await;
        assert!(
            out.status.success(),
            "fetch pebble root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = self.dir.path().join("roots.pem");
        std::fs::write(&path, out.stdout).expect("write root");
        path
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

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
