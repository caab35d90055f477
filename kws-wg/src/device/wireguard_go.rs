//! Starting a userspace interface with wireguard-go: the process runs in the foreground as our
//! child (so a supervisor sees it die), and its addresses and link state are set over netlink.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use ipnet::IpNet;
use kws_core::{DnsLabel, IfName};
use tokio::process::{Child, Command};

use crate::{
    Error,
    device::{UapiDevice, link},
};

/// How to start one wireguard-go interface.
///
/// ```no_run
/// # async fn f() -> Result<(), kws_wg::Error> {
/// use kws_wg::WireguardGo;
/// let wg0 = WireguardGo::new("wg0".parse()?).address("10.8.0.1/24".parse().expect("net"));
/// let running = wg0.start().await?; // killed when dropped
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct WireguardGo {
    interface: IfName,
    program: PathBuf,
    netns: Option<DnsLabel>,
    addresses: Vec<IpNet>,
    ready_timeout: Duration,
}

/// A running wireguard-go process; killed when dropped.
#[derive(Debug)]
pub struct RunningInterface {
    child: Child,
    interface: IfName,
}

impl WireguardGo {
    /// `wireguard-go` from `PATH`, in this network namespace, with no addresses.
    pub fn new(interface: IfName) -> Self {
        Self {
            interface,
            program: PathBuf::from("wireguard-go"),
            netns: None,
            addresses: Vec::new(),
            ready_timeout: Duration::from_secs(10),
        }
    }

    /// Runs this wireguard-go binary instead of the one on `PATH`.
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    /// Runs the interface inside the named network namespace (`ip netns exec`).
    pub fn netns(mut self, name: DnsLabel) -> Self {
        self.netns = Some(name);
        self
    }

    /// Gives the interface this address (and the route of its prefix).
    pub fn address(mut self, addr: IpNet) -> Self {
        self.addresses.push(addr);
        self
    }

    /// The interface's name.
    pub fn interface(&self) -> &IfName {
        &self.interface
    }

    /// A UAPI client for the interface.
    pub fn device(&self) -> UapiDevice {
        UapiDevice::new(self.interface.clone())
    }

    fn io(&self, context: String, source: std::io::Error) -> Error {
        Error::DeviceIo { interface: self.interface.clone(), context, source }
    }

    /// `argv` run in the interface's namespace.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.as_str()]).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Starts wireguard-go in the foreground, waits for its UAPI socket, then sets the
    /// addresses and brings the link up. The process is killed when the result is dropped.
    pub async fn start(&self) -> Result<RunningInterface, Error> {
        let mut cmd = self.command(&self.program);
        cmd.arg("-f")
            .arg(self.interface.as_str())
            .env("WG_PROCESS_FOREGROUND", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| self.io(format!("cannot start {}", self.program.display()), e))?;
        let mut running = RunningInterface { child, interface: self.interface.clone() };
        self.wait_ready(&mut running).await?;
        link::set_up(&self.interface, self.netns.as_ref(), &self.addresses).await?;
        Ok(running)
    }

    async fn wait_ready(&self, running: &mut RunningInterface) -> Result<(), Error> {
        let device = self.device();
        let deadline = tokio::time::Instant::now() + self.ready_timeout;
        loop {
            if let Some(status) = running.child.try_wait().map_err(|e| self.io("wait".into(), e))? {
                return Err(self.io(
                    format!(
                        "{} exited ({status}) before its socket was ready",
                        self.program.display()
                    ),
                    std::io::Error::other("interface process exited"),
                ));
            }
            if tokio::net::UnixStream::connect(device.socket()).await.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.io(
                    format!(
                        "no UAPI socket {} after {:?}",
                        device.socket().display(),
                        self.ready_timeout
                    ),
                    std::io::Error::from(std::io::ErrorKind::TimedOut),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl RunningInterface {
    /// The process id of wireguard-go (`None` once it has been reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The interface's name.
    pub fn interface(&self) -> &IfName {
        &self.interface
    }

    /// Waits until the process exits, and says how.
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }

    /// Kills the process and waits for it.
    pub async fn stop(mut self) -> std::io::Result<()> {
        self.child.kill().await
    }
}
