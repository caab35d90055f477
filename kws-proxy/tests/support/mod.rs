//! What the tests share: a test CA, real upstream HTTP servers on loopback, curl, a private
//! nginx, and pebble with pebble-challtestsrv.
#![allow(dead_code, unreachable_pub)]

#[cfg(feature = "caddy")]
pub mod caddy;
pub mod gate;
pub mod load;
pub mod pebble;

use std::{net::SocketAddr, path::PathBuf, process::Output, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::ws::{Message, WebSocket, WebSocketUpgrade},
    http::HeaderMap,
    response::IntoResponse,
    routing::get,
};
use kws_proxy::{CertFiles, RoutePolicy};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A test certificate authority that signs leaf certificates.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("CA key");
        Self { issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate") }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes `<stem>.pem` (chain) and `<stem>.key` into `dir` for `names`; returns the files
    /// and writes the CA itself to `ca.pem`.
    pub fn leaf(&self, dir: &std::path::Path, stem: &str, names: &[&str]) -> CertFiles {
        let key = KeyPair::generate().expect("leaf key");
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        let files = CertFiles {
            chain: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.chain, cert.pem()).expect("write chain");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        std::fs::write(dir.join("ca.pem"), self.pem()).expect("write ca");
        files
    }
}

/// The policy of every test: `example.test`, upstreams in 127.0.0.0/8.
pub fn policy() -> RoutePolicy {
    RoutePolicy::new("example.test".parse().expect("domain"), ["127.0.0.0/8".parse().expect("net")])
}

/// A real HTTP server on loopback: `GET /` answers `upstream <name> host=<Host>
/// xfp=<X-Forwarded-Proto> xff=<X-Forwarded-For> xfh=<X-Forwarded-Host> cookie=<Cookie>` with
/// an `x-upstream: <name>` header; `GET /ws` is a WebSocket echo.
pub async fn upstream(name: &str) -> SocketAddr {
    let name: Arc<str> = name.into();
    let app = Router::new().route("/ws", get(ws_echo)).fallback(move |headers: HeaderMap| {
        let name = name.clone();
        async move {
            let h =
                |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
            let body = format!(
                "upstream {name} host={} xfp={} xff={} xfh={} cookie={}\n",
                h("host"),
                h("x-forwarded-proto"),
                h("x-forwarded-for"),
                h("x-forwarded-host"),
                h("cookie")
            );
            ([("x-upstream", name.to_string())], body)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn ws_echo(upgrade: WebSocketUpgrade) -> impl IntoResponse {
    upgrade.on_upgrade(|mut socket: WebSocket| async move {
        while let Some(Ok(msg)) = socket.recv().await {
            let reply = match msg {
                Message::Text(t) => Message::Text(format!("echo {t}").into()),
                Message::Binary(b) => Message::Binary(b),
                Message::Close(_) => break,
                _ => continue,
            };
            if socket.send(reply).await.is_err() {
                break;
            }
        }
    })
}

/// Runs curl with `args`.
pub async fn curl(args: &[String]) -> Output {
    tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .await
        .expect("run curl")
}

/// `curl --resolve host:port:127.0.0.1 --cacert ca https://host:port/`; returns (ok, body or
/// error).
pub async fn https_get(host: &str, addr: SocketAddr, ca: &std::path::Path) -> (bool, String) {
    let out = curl(&[
        "--resolve".into(),
        format!("{host}:{}:127.0.0.1", addr.port()),
        "--cacert".into(),
        ca.display().to_string(),
        format!("https://{host}:{}/", addr.port()),
    ])
    .await;
    let text = if out.status.success() { out.stdout } else { out.stderr };
    (out.status.success(), String::from_utf8_lossy(&text).into_owned())
}

/// Polls `https_get` until it answers with `expected` in the body, or 10 s pass; returns the
/// time it took.
pub async fn wait_served(
    host: &str,
    addr: SocketAddr,
    ca: &std::path::Path,
    expected: &str,
) -> Duration {
    let start = std::time::Instant::now();
    loop {
        let (ok, body) = https_get(host, addr, ca).await;
        if ok && body.contains(expected) {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{host} not served: {body}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `curl http://<host>:<port><path>` without following: `"<status> <Location>"`.
pub async fn redirect_of(host: &str, http: SocketAddr, path: &str) -> String {
    let out = curl(&[
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_code} %{redirect_url}".into(),
        "--resolve".into(),
        format!("{host}:{}:127.0.0.1", http.port()),
        format!("http://{host}:{}{path}", http.port()),
    ])
    .await;
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Opens `wss://<host>:<port>/ws` through `addr` trusting `ca`, sends each text and expects the
/// upstream's echo back.
pub async fn websocket_echo(host: &str, addr: SocketAddr, ca: &std::path::Path, texts: &[&str]) {
    websocket_echo_with(host, addr, ca, texts, None).await;
}

/// As `websocket_echo`, sending `cookie` with the upgrade.
pub async fn websocket_echo_with(
    host: &str,
    addr: SocketAddr,
    ca: &std::path::Path,
    texts: &[&str],
    cookie: Option<&str>,
) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};

    let connector = load::connector(ca);
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).expect("name");
    let stream = connector.connect(name, tcp).await.expect("TLS to the proxy");
    let url = format!("wss://{host}:{}/ws", addr.port());
    let mut request = url.into_client_request().expect("request");
    if let Some(cookie) = cookie {
        request.headers_mut().insert("cookie", cookie.parse().expect("cookie header"));
    }
    let (mut ws, response) =
        tokio_tungstenite::client_async(request, stream).await.expect("upgrade");
    assert_eq!(response.status(), 101);
    for text in texts {
        ws.send(Message::text(*text)).await.expect("send");
        let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("reply in time")
            .expect("a frame")
            .expect("a message");
        assert_eq!(reply, Message::text(format!("echo {text}")));
    }
    ws.close(None).await.expect("close");
}

/// Waits until something listens on loopback `port`; panics if `child` exits first.
pub fn wait_port(port: u16, child: &mut std::process::Child, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited: {status}");
        }
        assert!(std::time::Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The hosts of kws's route journal in `dir`, sorted: read here on its own (committed batches
/// only), as an oracle for what kws persisted.
pub fn journal_hosts(dir: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("routes.journal")).expect("journal");
    let mut hosts = std::collections::BTreeSet::new();
    let mut pending = Vec::new();
    for line in text.lines() {
        if line == "." {
            for (op, host) in pending.drain(..) {
                if op == "+" {
                    hosts.insert(host);
                } else {
                    hosts.remove(&host);
                }
            }
        } else if let Some((op, rest)) = line.split_once(' ') {
            if op == "+" || op == "-" {
                let host = rest.split(' ').next().expect("host").to_string();
                pending.push((op.to_string(), host));
            }
        }
    }
    hosts.into_iter().collect()
}

/// nginx on PATH with its Lua module, or a loud skip (a failure under KWS_TEST_REQUIRE=1).
pub fn nginx_available() -> bool {
    match std::process::Command::new("nginx").arg("-v").output() {
        #[cfg(feature = "nginx")]
        Ok(out) if out.status.success() => {
            match kws_proxy::nginx::lua_modules(std::path::Path::new("nginx")) {
                Ok(_) => true,
                Err(why) => kws_testenv::unavailable::<()>("nginx's Lua module", why).is_some(),
            }
        }
        #[cfg(not(feature = "nginx"))]
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            kws_testenv::unavailable::<()>("nginx", format!("nginx -v: {}", out.status)).is_some()
        }
        Err(e) => kws_testenv::unavailable::<()>("nginx", e).is_some(),
    }
}

pub fn path(s: &str) -> PathBuf {
    PathBuf::from(s)
}

/// A private nginx with a test wildcard certificate, and an `NginxProxy` on it.
#[cfg(feature = "nginx")]
pub struct Fixture {
    pub proxy: kws_proxy::nginx::NginxProxy,
    pub nginx: kws_proxy::nginx::LocalNginx,
    pub ca: PathBuf,
    pub certs: CertFiles,
    pub tmp: tempfile::TempDir,
}

#[cfg(feature = "nginx")]
impl Fixture {
    pub async fn start() -> Option<Self> {
        Self::start_with(None).await
    }

    /// As `start`, with IDE routes checked by the gate at `ide_gate`.
    pub async fn start_with(ide_gate: Option<SocketAddr>) -> Option<Self> {
        if !nginx_available() {
            return None;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let certs_dir = tmp.path().join("certs");
        std::fs::create_dir_all(&certs_dir).expect("certs dir");
        let certs = TestCa::new("kws test CA").leaf(
            &certs_dir,
            "wildcard",
            &["*.example.test", "example.test"],
        );
        let prefix = tmp.path().join("nginx");
        let nginx =
            kws_proxy::nginx::LocalNginx::start(&prefix, certs.clone()).expect("start nginx");
        let config = kws_proxy::nginx::NginxConfig { ide_gate, ..nginx.config().clone() };
        let proxy = kws_proxy::nginx::NginxProxy::open(policy(), config).await.expect("open proxy");
        Some(Self { proxy, nginx, ca: certs_dir.join("ca.pem"), certs, tmp })
    }

    pub fn host(&self, label: &str) -> kws_core::Hostname {
        kws_proxy::ProxyWriter::policy(&self.proxy)
            .host(&format!("{label}.example.test"))
            .expect("host")
    }

    pub fn kws_dir(&self) -> PathBuf {
        self.nginx.config().dir.clone()
    }
}
