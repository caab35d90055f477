//! pebble and pebble-challtestsrv from Debian's `pebble` package (a real ACME server and its
//! test DNS), started by the test on free loopback ports, with a TLS certificate for pebble
//! made here by `openssl` (the package ships none).

use std::{
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use crate::unavailable;

/// A running pebble and challtestsrv; both killed on drop.
#[derive(Debug)]
pub struct Pebble {
    children: Vec<Child>,
    /// The ACME directory URL.
    pub directory: String,
    /// challtestsrv's management API.
    pub challtestsrv: String,
    /// pebble's management API (roots, intermediates).
    pub management: String,
    /// The CA of pebble's own TLS certificate (trust it to talk to pebble).
    pub tls_root: PathBuf,
    dir: PathBuf,
}

fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("addr").port())
}

fn wait_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A test CA and a leaf certificate for `localhost` and `127.0.0.1` it signed, in `dir`:
/// (CA, leaf chain, leaf key). TLS clients refuse a CA certificate as a server's own.
fn localhost_certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    let (ca_key, ca_pem) = (path("ca.key"), path("ca.pem"));
    ca.extend(["-days", "2", "-subj", "/CN=pebble test CA", "-keyout", &ca_key, "-out", &ca_pem]);
    openssl(&ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    let (key, request) = (path("pebble-tls.key"), path("pebble-tls.csr"));
    csr.extend(["-subj", "/CN=localhost", "-keyout", &key, "-out", &request]);
    openssl(&csr);
    let ext = path("ext.cnf");
    std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        .expect("extensions");
    let chain = path("pebble-tls.pem");
    openssl(&[
        "x509",
        "-req",
        "-in",
        &request,
        "-CA",
        &ca_pem,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext,
        "-out",
        &chain,
    ]);
    (dir.join("ca.pem"), dir.join("pebble-tls.pem"), dir.join("pebble-tls.key"))
}

impl Pebble {
    /// Starts both, with their data in `dir`; `None` (skipped loudly, failing under
    /// `KWS_TEST_REQUIRE=1`) when the package is absent.
    pub fn start(dir: &Path) -> Option<Self> {
        for bin in ["pebble", "pebble-challtestsrv", "openssl"] {
            let found = Command::new("sh").args(["-c", &format!("command -v {bin}")]).output();
            if !found.is_ok_and(|o| o.status.success()) {
                return unavailable(
                    "pebble",
                    format!("{bin} is not installed (Debian packages pebble, openssl)"),
                );
            }
        }
        std::fs::create_dir_all(dir).expect("pebble dir");
        let (ca, chain, key) = localhost_certificate(dir);
        let [acme, mgmt, http01, tlsalpn, dns, chall] = free_ports::<6>();
        let config = format!(
            r#"{{"pebble": {{"listenAddress": "127.0.0.1:{acme}", "managementListenAddress": "127.0.0.1:{mgmt}",
            "certificate": {chain:?}, "privateKey": {key:?}, "httpPort": {http01}, "tlsPort": {tlsalpn},
            "ocspResponderURL": "", "externalAccountBindingRequired": false}}}}"#,
        );
        let config_path = dir.join("pebble.json");
        std::fs::write(&config_path, config).expect("pebble config");
        let log = |name: &str| std::fs::File::create(dir.join(name)).expect("log file");
        let mut chall_child = Command::new("pebble-challtestsrv")
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{chall}")])
            .stdout(log("challtestsrv.log"))
            .spawn()
            .expect("start pebble-challtestsrv");
        let mut pebble_child = Command::new("pebble")
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
        wait_port(chall, &mut chall_child, "pebble-challtestsrv");
        wait_port(acme, &mut pebble_child, "pebble");
        Some(Self {
            children: vec![chall_child, pebble_child],
            directory: format!("https://127.0.0.1:{acme}/dir"),
            challtestsrv: format!("http://127.0.0.1:{chall}"),
            management: format!("https://127.0.0.1:{mgmt}"),
            tls_root: ca,
            dir: dir.to_path_buf(),
        })
    }

    /// pebble's issuing root, fetched from its management API and written to `roots.pem`.
    pub fn root(&self) -> PathBuf {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(&self.tls_root)
            .arg(format!("{}/roots/0", self.management))
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "fetch pebble's root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = self.dir.join("roots.pem");
        std::fs::write(&path, out.stdout).expect("write root");
        path
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
