//! The UAPI backend: a WireGuard interface run by wireguard-go or boringtun, reached over its
//! Unix socket `/var/run/wireguard/<iface>.sock`. One request per connection.

use std::path::{Path, PathBuf};

use kws_core::IfName;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::UnixStream,
};

use crate::{
    Error,
    device::{DeviceState, InterfaceConfig, PeerChange, PeerConfig, WgDevice, wire},
};

/// Where userspace WireGuard implementations put their UAPI sockets.
pub const SOCKET_DIR: &str = "/var/run/wireguard";

/// A userspace WireGuard interface reached over its UAPI socket.
#[derive(Debug, Clone)]
pub struct UapiDevice {
    interface: IfName,
    socket: PathBuf,
}

impl UapiDevice {
    /// The interface's socket in the standard place (`/var/run/wireguard/<iface>.sock`).
    pub fn new(interface: IfName) -> Self {
        let socket = Path::new(SOCKET_DIR).join(format!("{interface}.sock"));
        Self { interface, socket }
    }

    /// The interface's socket at `socket`.
    pub fn with_socket(interface: IfName, socket: impl Into<PathBuf>) -> Self {
        Self { interface, socket: socket.into() }
    }

    /// The socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn io(&self, context: &str, source: std::io::Error) -> Error {
        Error::DeviceIo { interface: self.interface.clone(), context: context.to_owned(), source }
    }

    fn protocol(&self, detail: String) -> Error {
        Error::DeviceProtocol { interface: self.interface.clone(), detail }
    }

    /// Sends one request on a fresh connection and returns the answer's body: every line
    /// before the final `errno=N` (failing on a non-zero errno).
    async fn request(&self, op: &'static str, text: &str) -> Result<String, Error> {
        let context = format!("{op} over {}", self.socket.display());
        let mut stream =
            UnixStream::connect(&self.socket).await.map_err(|e| self.io(&context, e))?;
        stream.write_all(text.as_bytes()).await.map_err(|e| self.io(&context, e))?;
        // The answer ends at its first empty line (no line of a body is empty). Read in large
        // chunks and look for it only in what just arrived: 10,000 peers are megabytes.
        let mut answer = Vec::with_capacity(4096);
        let end = loop {
            let searched_from = answer.len().saturating_sub(1);
            if answer.capacity() - answer.len() < 16 * 1024 {
                answer.reserve(64 * 1024);
            }
            let n = stream.read_buf(&mut answer).await.map_err(|e| self.io(&context, e))?;
            if n == 0 {
                return Err(self.protocol(format!("connection closed before errno ({op})")));
            }
            if let Some(at) = answer[searched_from..].windows(2).position(|w| w == b"\n\n") {
                break searched_from + at + 1;
            }
        };
        answer.truncate(end);
        let (body, errno) = wire::split_answer(answer).map_err(|d| self.protocol(d))?;
        if errno != 0 {
            return Err(Error::DeviceErrno { interface: self.interface.clone(), op, errno });
        }
        Ok(body)
    }

    async fn set(&self, text: String) -> Result<(), Error> {
        self.request("set", &text).await.map(drop)
    }
}

#[async_trait::async_trait]
impl WgDevice for UapiDevice {
    fn interface(&self) -> &IfName {
        &self.interface
    }

    async fn get(&self) -> Result<DeviceState, Error> {
        let body = self.request("get", "get=1\n\n").await?;
        wire::parse_get(&body).map_err(|d| self.protocol(d))
    }

    async fn configure(&self, config: &InterfaceConfig) -> Result<(), Error> {
        self.set(wire::set_request(Some(config), false, &[])).await
    }

    async fn apply(&self, changes: &[PeerChange]) -> Result<(), Error> {
        if changes.is_empty() {
            return Ok(());
        }
        self.set(wire::set_request(None, false, changes)).await
    }

    async fn replace_peers(&self, peers: &[PeerConfig]) -> Result<(), Error> {
        let changes: Vec<PeerChange> = peers.iter().cloned().map(PeerChange::Upsert).collect();
        self.set(wire::set_request(None, true, &changes)).await
    }
}
