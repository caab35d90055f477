//! `LocalNginx`: a private nginx with its own prefix folder on loopback ports, for tests,
//! examples and development. It never reads or touches the system's nginx configuration.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use kws_core::Domain;

use crate::{
    CertFiles,
    nginx::{NginxConfig, ProxyTimeouts},
};

/// A running private nginx; stopped (SIGQUIT, then SIGKILL) on drop.
#[derive(Debug)]
pub struct LocalNginx {
    config: NginxConfig,
    child: Child,
}

impl LocalNginx {
    /// Starts `nginx` (from `PATH`) with prefix `prefix` (created if needed) on two free
    /// loopback ports. Its main configuration includes kws's folder `prefix/kws` and every
    /// `prefix/conf/extra/*.conf` (the operator's own files).
    pub fn start(prefix: &Path, certificate: CertFiles) -> std::io::Result<Self> {
        // Another process may take a free port before nginx binds it: then try other ports.
        let mut last = None;
        for _ in 0..5 {
            match Self::start_once(prefix, certificate.clone()) {
                Ok(nginx) => return Ok(nginx),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("nginx did not start")))
    }

    fn start_once(prefix: &Path, certificate: CertFiles) -> std::io::Result<Self> {
        for dir in ["conf/extra", "logs", "tmp", "kws"] {
            std::fs::create_dir_all(prefix.join(dir))?;
        }
        // Workers run as an unprivileged user and must reach their temporary folders.
        std::fs::set_permissions(prefix, std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(prefix.join("tmp"), std::fs::Permissions::from_mode(0o777))?;
        let (http_port, https_port) = free_ports()?;
        let config = NginxConfig {
            binary: PathBuf::from("nginx"),
            main_config: prefix.join("conf/nginx.conf"),
            prefix: prefix.to_path_buf(),
            pid_file: prefix.join("logs/nginx.pid"),
            reload_timeout: Duration::from_secs(60),
            dir: prefix.join("kws"),
            http_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, http_port)),
            https_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, https_port)),
            default_server: true,
            certificate,
            timeouts: ProxyTimeouts::default(),
        };
        // http.conf must exist before nginx starts; NginxProxy::open rewrites it identically.
        std::fs::create_dir_all(config.routes_dir())?;
        std::fs::write(config.shared_conf_path(), crate::nginx::render::shared_conf())?;
        std::fs::write(config.http_conf_path(), crate::nginx::render::http_conf(&config))?;
        std::fs::write(&config.main_config, main_conf(prefix, &config))?;
        let child = Command::new(&config.binary)
            .args(["-e", "stderr"])
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&config.main_config)
            .stdin(Stdio::null())
            .spawn()?;
        let mut nginx = Self { config, child };
        nginx.wait_listening()?;
        Ok(nginx)
    }

    /// The configuration to open an `NginxProxy` on this nginx with.
    pub fn config(&self) -> &NginxConfig {
        &self.config
    }

    /// Where routes listen for plain HTTP.
    pub fn http_addr(&self) -> SocketAddr {
        self.config.http_listen
    }

    /// Where routes listen for HTTPS.
    pub fn https_addr(&self) -> SocketAddr {
        self.config.https_listen
    }

    /// The master process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_listening(&mut self) -> std::io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(self.config.prefix.join("logs/error.log"))
                    .unwrap_or_default();
                return Err(std::io::Error::other(format!("nginx exited ({status}): {log}")));
            }
            // Listening, and by this nginx: its pid file names our child (another nginx could
            // hold the port if ours failed to bind it).
            let pid = std::fs::read_to_string(&self.config.pid_file).unwrap_or_default();
            if pid.trim() == self.child.id().to_string()
                && TcpStream::connect(self.config.http_listen).is_ok()
                && TcpStream::connect(self.config.https_listen).is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other("nginx did not listen within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LocalNginx {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes a self-signed wildcard certificate for `*.<domain>` and `<domain>` in `dir` with the
/// `openssl` command (for development and examples; production certificates come from
/// `tls::CertIssuer`). The chain file is also the CA to trust (`curl --cacert`).
pub fn self_signed_certificate(dir: &Path, domain: &Domain) -> std::io::Result<CertFiles> {
    std::fs::create_dir_all(dir)?;
    let files = CertFiles { chain: dir.join("self-signed.pem"), key: dir.join("self-signed.key") };
    let output = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args(["-nodes", "-days", "30", "-subj", &format!("/CN={domain}")])
        .args(["-addext", &format!("subjectAltName=DNS:*.{domain},DNS:{domain}")])
        .arg("-keyout")
        .arg(&files.key)
        .arg("-out")
        .arg(&files.chain)
        .output()?;
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        return Err(std::io::Error::other(format!("openssl req failed: {err}")));
    }
    Ok(files)
}

fn main_conf(prefix: &Path, config: &NginxConfig) -> String {
    let p = |rel: &str| prefix.join(rel).display().to_string();
    format!(
        "# A private nginx written by kws's LocalNginx.\n\
         daemon off;\nmaster_process on;\nworker_processes 1;\n\
         error_log \"{log}\" warn;\npid \"{pid}\";\n\
         events {{\n    worker_connections 4096;\n}}\n\
         http {{\n    access_log off;\n    \
         client_body_temp_path \"{tmp}/body\";\n    proxy_temp_path \"{tmp}/proxy\";\n    \
         fastcgi_temp_path \"{tmp}/fastcgi\";\n    uwsgi_temp_path \"{tmp}/uwsgi\";\n    \
         scgi_temp_path \"{tmp}/scgi\";\n    \
         server_names_hash_bucket_size 256;\n    server_names_hash_max_size 65536;\n    \
         include \"{http}\";\n    include \"{extra}/*.conf\";\n}}\n",
        log = p("logs/error.log"),
        pid = config.pid_file.display(),
        tmp = p("tmp"),
        http = config.http_conf_path().display(),
        extra = p("conf/extra"),
    )
}

/// Two distinct loopback TCP ports that were free a moment ago.
fn free_ports() -> std::io::Result<(u16, u16)> {
    let a = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let b = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}
