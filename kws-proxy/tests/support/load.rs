//! An HTTPS load generator: tasks that keep requesting routes through the proxy and check that
//! each answer comes from the route's own upstream (its `x-upstream` header).

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use http_body_util::{BodyExt, Empty};
use hyper::{Request, body::Bytes, client::conn::http1};
use hyper_util::rt::TokioIo;
use tokio_rustls::TlsConnector;

/// A TLS connector trusting only the CA in `ca` (PEM).
pub fn connector(ca: &std::path::Path) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).expect("ca");
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(&pem).expect("ca pem");
    roots.add(der).expect("add root");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    TlsConnector::from(Arc::new(tls))
}

/// An HTTP/1.1 connection over TLS to `host` through the proxy at `addr`.
pub struct Connection {
    sender: http1::SendRequest<Empty<Bytes>>,
    host: String,
}

impl Connection {
    /// Connects (TCP, TLS handshake with SNI `host`, HTTP/1.1).
    pub async fn open(tls: &TlsConnector, addr: SocketAddr, host: &str) -> Result<Self, String> {
        let tcp =
            tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| format!("name {host}: {e}"))?;
        let stream = tls.connect(name, tcp).await.map_err(|e| format!("TLS to {host}: {e}"))?;
        let (sender, conn) =
            http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("HTTP: {e}"))?;
        tokio::spawn(conn);
        Ok(Self { sender, host: host.to_string() })
    }

    /// `GET /` on this connection: the status and the `x-upstream` header.
    pub async fn get(&mut self) -> Result<(u16, String), String> {
        let host = self.host.clone();
        self.get_host(&host).await
    }

    /// `GET /` with `Host: <host>` on this connection (whatever name its handshake used).
    pub async fn get_host(&mut self, host: &str) -> Result<(u16, String), String> {
        self.sender.ready().await.map_err(|e| format!("{}: not ready: {e}", self.host))?;
        let request =
            Request::get("/").header("host", host).body(Empty::new()).map_err(|e| e.to_string())?;
        let response =
            self.sender.send_request(request).await.map_err(|e| format!("{}: {e}", self.host))?;
        let status = response.status().as_u16();
        let upstream = response
            .headers()
            .get("x-upstream")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string();
        response.into_body().collect().await.map_err(|e| format!("{}: body: {e}", self.host))?;
        Ok((status, upstream))
    }
}

/// One request on a new connection: `Ok((status, upstream))`, or `Err` if no connection or no
/// answer.
pub async fn get_once(
    tls: &TlsConnector,
    addr: SocketAddr,
    host: &str,
) -> Result<(u16, String), String> {
    Connection::open(tls, addr, host).await?.get().await
}

/// `GET /` for every host of `hosts` over `connections` kept-alive connections (each opened with
/// the name `sni`, and opened again every 500 requests: nginx closes a connection after 1,000),
/// routed by the Host header only: `<host> <status> <x-upstream>` lines, sorted.
pub async fn get_all_by_host(
    tls: &TlsConnector,
    addr: SocketAddr,
    sni: &str,
    hosts: &[String],
    connections: usize,
) -> Vec<String> {
    let mut tasks = Vec::new();
    for part in hosts.chunks(hosts.len().div_ceil(connections.max(1)).max(1)) {
        let (tls, sni, part) = (tls.clone(), sni.to_string(), part.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut lines = Vec::new();
            for hosts in part.chunks(500) {
                let mut conn = Connection::open(&tls, addr, &sni).await.expect("connect");
                for host in hosts {
                    let line = match conn.get_host(host).await {
                        Ok((status, upstream)) => format!("{host} {status} {upstream}"),
                        Err(e) => format!("{host} error {e}"),
                    };
                    lines.push(line);
                }
            }
            lines
        }));
    }
    let mut lines = Vec::new();
    for task in tasks {
        lines.extend(task.await.expect("check task"));
    }
    lines.sort();
    lines
}

/// What the load saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub wrong_upstream: AtomicU64,
    pub errors: Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, host: &str, expected: &str, result: Result<(u16, String), String>) {
        match result {
            Ok((200, upstream)) if upstream == expected => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok((200, upstream)) => {
                self.wrong_upstream.fetch_add(1, Ordering::Relaxed);
                self.note(format!("{host}: served by {upstream}, not {expected}"));
            }
            Ok((status, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.note(format!("{host}: HTTP {status}"));
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.note(e);
            }
        }
    }

    fn note(&self, error: String) {
        let mut errors = self.errors.lock().expect("errors");
        if errors.len() < 20 {
            errors.push(error);
        }
    }
}

/// Runs `tasks` request loops over `routes` (`(host, upstream name)`) until `stop`: even tasks
/// open a new connection (and TLS handshake) per request, odd tasks keep one connection per host
/// for 20 requests.
pub fn run(
    tls: TlsConnector,
    addr: SocketAddr,
    routes: Arc<Vec<(String, String)>>,
    tasks: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..tasks)
        .map(|task| {
            let (tls, routes, stop, tally) =
                (tls.clone(), routes.clone(), stop.clone(), tally.clone());
            tokio::spawn(async move {
                let mut next = task;
                while !stop.load(Ordering::SeqCst) {
                    let (host, expected) = &routes[next % routes.len()];
                    next += tasks;
                    if task % 2 == 0 {
                        tally.record(host, expected, get_once(&tls, addr, host).await);
                        continue;
                    }
                    match Connection::open(&tls, addr, host).await {
                        Ok(mut conn) => {
                            for _ in 0..20 {
                                tally.record(host, expected, conn.get().await);
                                if stop.load(Ordering::SeqCst) {
                                    break;
                                }
                            }
                        }
                        Err(e) => tally.record(host, expected, Err(e)),
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        })
        .collect()
}
