//! The UAPI backend: a WireGuard interface run by wireguard-go or boringtun, reached over its
//! Unix socket `/var/run/wireguard/<iface>.sock`. One request per connection.

use std::path::{Path, PathBuf};

use kws_core::IfName;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
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

    /// Sends one request on a fresh connection and returns the answer's `key=value` lines
    /// (without the final `errno`), failing on a non-zero errno.
    async fn request(&self, op: &'static str, text: &str) -> Result<Vec<(String, String)>, Error> {
        let context = format!("{op} over {}", self.socket.display());
        let mut stream =
            UnixStream::connect(&self.socket).await.map_err(|e| self.io(&context, e))?;
        stream.write_all(text.as_bytes()).await.map_err(|e| self.io(&context, e))?;
        let mut reader = BufReader::new(stream);
        let mut lines = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).await.map_err(|e| self.io(&context, e))?;
            if n == 0 {
                return Err(self.protocol(format!("connection closed before errno ({op})")));
            }
            let trimmed = line.trim_end_matches('\n');
            let Some((key, value)) = trimmed.split_once('=') else {
                return Err(self.protocol(format!("line {trimmed:?} is not key=value")));
            };
            if key == "errno" {
                let errno = wire::parse_errno(value).map_err(|d| self.protocol(d))?;
                if errno != 0 {
                    return Err(Error::DeviceErrno {
                        interface: self.interface.clone(),
                        op,
                        errno,
                    });
                }
                return Ok(lines);
            }
            lines.push((key.to_owned(), value.to_owned()));
        }
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
        let lines = self.request("get", "get=1\n\n").await?;
        wire::parse_get(&lines).map_err(|d| self.protocol(d))
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
