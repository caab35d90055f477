//! A WireGuard client in a test's namespace, configured only from a wg-quick file (what a
//! user's device does with the file kws renders): wireguard-go, `wg setconf` of the file's
//! interface and peer part, the `Address` values on the link, and a route per `AllowedIPs`
//! prefix, as wg-quick itself does.

use std::{
    path::PathBuf,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use crate::Netns;

/// A running client interface; its wireguard-go is killed (and its socket removed) on drop.
#[derive(Debug)]
pub struct WgQuickClient {
    interface: String,
    child: Child,
}

impl WgQuickClient {
    /// Starts wireguard-go for `interface` in `ns` and configures it from `wg_quick`.
    ///
    /// # Panics
    /// When wireguard-go or `wg` cannot run, or the file does not configure.
    pub fn start(ns: &Netns, interface: &str, wg_quick: &str) -> Self {
        let child = ns
            .command(["wireguard-go", "-f", interface])
            .env("WG_PROCESS_FOREGROUND", "1")
            .stdin(Stdio::null())
            .spawn()
            .expect("client wireguard-go");
        let client = Self { interface: interface.to_owned(), child };
        let socket = client.socket();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "client wireguard-go never opened its socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        let (setconf, addresses, routes) = split_wg_quick(wg_quick);
        let file = std::env::temp_dir().join(format!("kws-wg-{interface}.conf"));
        std::fs::write(&file, setconf).expect("write setconf file");
        ns.run(["wg", "setconf", interface, file.to_str().expect("utf-8")]);
        let _ = std::fs::remove_file(&file);
        for addr in &addresses {
            ns.run(["ip", "address", "add", addr, "dev", interface]);
        }
        ns.run(["ip", "link", "set", interface, "up"]);
        for route in &routes {
            ns.run(["ip", "route", "add", route, "dev", interface]);
        }
        client
    }

    fn socket(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/wireguard/{}.sock", self.interface))
    }
}

impl Drop for WgQuickClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A killed userspace interface leaves its socket behind.
        let _ = std::fs::remove_file(self.socket());
    }
}

/// Splits a wg-quick file into its `wg setconf` part, its `Address` values and the routes of
/// its `AllowedIPs`.
pub fn split_wg_quick(text: &str) -> (String, Vec<String>, Vec<String>) {
    let mut setconf = String::new();
    let mut addresses = Vec::new();
    let mut routes = Vec::new();
    let list = |v: &str| v.split(',').map(|s| s.trim().to_owned()).collect::<Vec<_>>();
    for line in text.lines() {
        match line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("Address", v)) => addresses.extend(list(v)),
            Some(("DNS", _)) => {}
            Some(("AllowedIPs", v)) => {
                routes.extend(list(v));
                setconf.push_str(line);
                setconf.push('\n');
            }
            _ => {
                setconf.push_str(line);
                setconf.push('\n');
            }
        }
    }
    (setconf, addresses, routes)
}
