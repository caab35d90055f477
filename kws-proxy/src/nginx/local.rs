//! `LocalNginx`: a private nginx with its own prefix folder on loopback ports, for tests,
//! examples and development. It never reads or touches the system's nginx configuration.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use kws_core::Domain;

use crate::{
    CertFiles,
    nginx::{DEFAULT_ROUTE_TABLE_BYTES, NginxConfig, ProxyTimeouts, admin, render, workers},
};

/// A running private nginx (two workers); stopped (SIGQUIT, then SIGKILL) on drop.
#[derive(Debug)]
pub struct LocalNginx {
    config: NginxConfig,
    child: Child,
}

/// How `LocalNginx::restart` stops nginx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGQUIT: nginx finishes the requests in flight and exits.
    Graceful,
    /// SIGKILL to the master and every worker at once: a crash. The shared route table goes with
    /// them.
    Kill,
}

impl LocalNginx {
    /// Starts `nginx` (from `PATH`, with Debian's Lua module) with prefix `prefix` (created if
    /// needed) on three free loopback ports (HTTP, HTTPS, kws's admin server). Its main
    /// configuration includes kws's folder `prefix/kws` and every `prefix/conf/extra/*.conf`
    /// (the operator's own files).
    pub fn start(prefix: &Path, certificate: CertFiles) -> std::io::Result<Self> {
        let modules = lua_modules(Path::new("nginx")).map_err(std::io::Error::other)?;
        // Another process may take a free port before nginx binds it: then try other ports.
        let mut last = None;
        for _ in 0..5 {
            match Self::start_once(prefix, certificate.clone(), &modules) {
                Ok(nginx) => return Ok(nginx),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("nginx did not start")))
    }

    /// The configuration of a `LocalNginx` with prefix `prefix` on these loopback ports (what
    /// `start` uses; another process opens an `NginxProxy` on a running `LocalNginx` with it).
    pub fn config_at(prefix: &Path, ports: [u16; 3], certificate: CertFiles) -> NginxConfig {
        let [http, https, admin] = ports.map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        NginxConfig {
            binary: PathBuf::from("nginx"),
            main_config: prefix.join("conf/nginx.conf"),
            prefix: prefix.to_path_buf(),
            pid_file: prefix.join("logs/nginx.pid"),
            reload_timeout: Duration::from_secs(60),
            dir: prefix.join("kws"),
            http_listen: http,
            https_listen: https,
            admin_listen: admin,
            route_table_bytes: DEFAULT_ROUTE_TABLE_BYTES,
            default_server: true,
            certificate,
            timeouts: ProxyTimeouts::default(),
            ide_gate: None,
        }
    }

    fn start_once(
        prefix: &Path,
        certificate: CertFiles,
        modules: &[PathBuf; 2],
    ) -> std::io::Result<Self> {
        for dir in ["conf/extra", "logs", "tmp", "kws"] {
            std::fs::create_dir_all(prefix.join(dir))?;
        }
        // Workers run as an unprivileged user and must reach their temporary folders.
        std::fs::set_permissions(prefix, std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(prefix.join("tmp"), std::fs::Permissions::from_mode(0o777))?;
        let config = Self::config_at(prefix, free_ports()?, certificate);
        // kws's files must exist before nginx starts; NginxProxy::open rewrites them identically.
        let token = admin::token_at(&config.admin_conf_path())?;
        for (path, text, private) in render::files(&config, None, &token).files {
            let mut file = std::fs::OpenOptions::new();
            file.write(true).create(true).truncate(true).mode(if private { 0o600 } else { 0o644 });
            std::io::Write::write_all(&mut file.open(&path)?, text.as_bytes())?;
        }
        std::fs::write(&config.main_config, main_conf(prefix, &config, modules))?;
        let child = spawn(&config)?;
        let mut nginx = Self { config, child };
        nginx.wait_listening()?;
        Ok(nginx)
    }

    /// Stops nginx as `stop` says, then starts it again with the same configuration and ports
    /// (kws's files as they are now, the journal included).
    pub fn restart(&mut self, stop: Stop) -> std::io::Result<()> {
        match stop {
            Stop::Graceful => self.stop(),
            Stop::Kill => {
                let master = self.child.id();
                let pids: Vec<u32> = workers::workers(master).iter().map(|w| w.pid()).collect();
                for pid in std::iter::once(master).chain(pids.iter().copied()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let _ = self.child.wait();
                let deadline = Instant::now() + Duration::from_secs(10);
                while pids.iter().any(|pid| Path::new(&format!("/proc/{pid}")).exists()) {
                    if Instant::now() > deadline {
                        return Err(std::io::Error::other("nginx workers outlived SIGKILL"));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        self.child = spawn(&self.config)?;
        self.wait_listening()
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

    /// The pids of the worker processes.
    pub fn worker_pids(&self) -> Vec<u32> {
        workers::workers(self.child.id()).iter().map(|w| w.pid()).collect()
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
            let listening =
                [self.config.http_listen, self.config.https_listen, self.config.admin_listen]
                    .iter()
                    .all(|addr| TcpStream::connect(addr).is_ok());
            if pid.trim() == self.child.id().to_string() && listening {
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
        self.stop();
    }
}

impl LocalNginx {
    /// SIGQUIT, then SIGKILL after 5 s.
    fn stop(&mut self) {
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

fn main_conf(prefix: &Path, config: &NginxConfig, modules: &[PathBuf; 2]) -> String {
    let p = |rel: &str| prefix.join(rel).display().to_string();
    format!(
        "# A private nginx written by kws's LocalNginx.\n\
         load_module \"{ndk}\";\nload_module \"{lua}\";\n\
         daemon off;\nmaster_process on;\nworker_processes 2;\n\
         error_log \"{log}\" warn;\npid \"{pid}\";\n\
         events {{\n    worker_connections 4096;\n}}\n\
         http {{\n    access_log off;\n    \
         client_body_temp_path \"{tmp}/body\";\n    proxy_temp_path \"{tmp}/proxy\";\n    \
         fastcgi_temp_path \"{tmp}/fastcgi\";\n    uwsgi_temp_path \"{tmp}/uwsgi\";\n    \
         scgi_temp_path \"{tmp}/scgi\";\n    \
         include \"{http}\";\n    include \"{extra}/*.conf\";\n}}\n",
        ndk = modules[0].display(),
        lua = modules[1].display(),
        log = p("logs/error.log"),
        pid = config.pid_file.display(),
        tmp = p("tmp"),
        http = config.http_conf_path().display(),
        extra = p("conf/extra"),
    )
}

fn spawn(config: &NginxConfig) -> std::io::Result<Child> {
    Command::new(&config.binary)
        .args(["-e", "stderr"])
        .arg("-p")
        .arg(&config.prefix)
        .arg("-c")
        .arg(&config.main_config)
        .stdin(Stdio::null())
        .spawn()
}

/// The dynamic modules kws's configuration needs, `[ndk, lua]`, in the modules folder `binary`
/// was built with (`nginx -V`'s `--modules-path`); `Err` says what to install.
pub fn lua_modules(binary: &Path) -> Result<[PathBuf; 2], String> {
    let output = Command::new(binary)
        .arg("-V")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let text = String::from_utf8_lossy(&output.stderr);
    let dir = text
        .split_whitespace()
        .find_map(|arg| arg.strip_prefix("--modules-path="))
        .unwrap_or("/usr/lib/nginx/modules");
    let modules = ["ndk_http_module.so", "ngx_http_lua_module.so"].map(|m| Path::new(dir).join(m));
    match modules.iter().find(|m| !m.is_file()) {
        Some(missing) => Err(format!(
            "{} is missing: kws's nginx backend needs nginx's Lua module (Debian: apt-get install \
             libnginx-mod-http-lua)",
            missing.display()
        )),
        None => Ok(modules),
    }
}

/// Three distinct loopback TCP ports that were free a moment ago.
fn free_ports() -> std::io::Result<[u16; 3]> {
    let listeners = [(); 3].map(|()| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)));
    let mut ports = [0; 3];
    for (port, listener) in ports.iter_mut().zip(listeners) {
        *port = listener?.local_addr()?.port();
    }
    Ok(ports)
}
