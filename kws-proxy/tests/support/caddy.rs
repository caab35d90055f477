//! A private Caddy (Debian's `caddy`) with its admin API and data on loopback and in a
//! temporary folder.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener},
    process::{Child, Command},
};

use kws_proxy::{CertFiles, caddy::CaddyConfig};

pub struct LocalCaddy {
    child: Child,
    pub config: CaddyConfig,
    dir: tempfile::TempDir,
}

impl LocalCaddy {
    pub fn start(certificate: CertFiles) -> Option<Self> {
        if Command::new("caddy")
            .arg("version")
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            return kws_testenv::unavailable(
                "caddy",
                "caddy is not installed (Debian package caddy)",
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let ports: Vec<TcpListener> =
            (0..3).map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind")).collect();
        let port = |i: usize| ports[i].local_addr().expect("addr").port();
        let (admin, http, https) = (port(0), port(1), port(2));
        drop(ports);
        let base = dir.path().join("base.json");
        let json = serde_json::json!({"admin": {"listen": format!("127.0.0.1:{admin}")}});
        std::fs::write(&base, json.to_string()).expect("base config");
        let mut child = spawn(dir.path());
        super::wait_port(admin, &mut child, "caddy admin API");
        let config = CaddyConfig {
            ide_gate: None,
            admin: format!("http://127.0.0.1:{admin}"),
            http_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, http)),
            https_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, https)),
            certificate,
            dir: dir.path().join("kws"),
        };
        Some(Self { child, config, dir })
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills Caddy (SIGKILL) and starts it again on the same admin port with only its admin
    /// API: every route is forgotten until kws restores them.
    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn(self.dir.path());
        let port = self.config.admin.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
        super::wait_port(port, &mut self.child, "caddy admin API");
    }
}

fn spawn(dir: &std::path::Path) -> Child {
    Command::new("caddy")
        .args(["run", "--config"])
        .arg(dir.join("base.json"))
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdout(
            std::fs::File::options()
                .append(true)
                .create(true)
                .open(dir.join("caddy.log"))
                .expect("log"),
        )
        .stderr(
            std::fs::File::options()
                .append(true)
                .create(true)
                .open(dir.join("caddy.err"))
                .expect("log"),
        )
        .spawn()
        .expect("start caddy")
}

impl Drop for LocalCaddy {
    fn drop(&mut self) {
        self.stop();
    }
}
