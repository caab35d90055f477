//! Network namespaces made by a test and deleted when it ends, even on failure.

use std::{
    ffi::OsStr,
    fs::File,
    os::fd::AsFd,
    process::{Child, Command, Output, Stdio},
};

use crate::{random_suffix, run_id, unavailable};

/// A named network namespace (`ip netns add kws-t-<run id>-<random>`). On drop, every process inside it
/// is killed and the namespace is deleted.
///
/// # Contract
/// The namespace starts with only a loopback link (down until `up_loopback`) and no route out of
/// it: nothing a test does inside can reach the machine's uplink.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace named `kws-t-<run id>-<random>`; `None` (after a loud skip message)
    /// when that is not possible here (not root, no `ip`); panics instead under
    /// `KWS_TEST_REQUIRE=1`.
    pub fn new() -> Option<Self> {
        let name = format!("kws-t-{}-{}", run_id(), random_suffix(8));
        match Command::new("ip").args(["netns", "add", &name]).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                return unavailable(
                    "network namespaces",
                    format!("ip netns add failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
                );
            }
            Err(e) => return unavailable("network namespaces", format!("cannot run ip: {e}")),
        }
        let ns = Self { name };
        ns.up_loopback();
        Some(ns)
    }

    /// The namespace's name (usable with `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Brings the loopback link up.
    pub fn up_loopback(&self) {
        self.run(["ip", "link", "set", "lo", "up"]);
    }

    /// Runs a command inside the namespace and returns its output.
    ///
    /// # Panics
    /// When the command cannot be started.
    pub fn exec<I, S>(&self, argv: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        match self.command(argv).output() {
            Ok(out) => out,
            Err(e) => panic!("cannot run a command in netns {}: {e}", self.name),
        }
    }

    /// Runs a command inside the namespace and requires success.
    ///
    /// # Panics
    /// When the command fails, with its stderr.
    pub fn run<I, S>(&self, argv: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let argv: Vec<S> = argv.into_iter().collect();
        let shown: Vec<String> =
            argv.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect();
        let out = self.exec(argv);
        if !out.status.success() {
            panic!(
                "in netns {}: `{}` failed: {}",
                self.name,
                shown.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A command that will run inside the namespace (`ip netns exec <name> argv...`).
    ///
    /// # Panics
    /// When `argv` is empty.
    pub fn command<I, S>(&self, argv: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(argv);
        cmd
    }

    /// Starts a long-running process inside the namespace (killed at the latest on drop).
    ///
    /// # Panics
    /// When it cannot be started.
    pub fn spawn<I, S>(&self, argv: I) -> Child
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        match self.command(argv).stdin(Stdio::null()).spawn() {
            Ok(child) => child,
            Err(e) => panic!("cannot spawn in netns {}: {e}", self.name),
        }
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns its result. Use it
    /// for in-process netlink or socket work; build a runtime inside `f` for async code.
    ///
    /// # Panics
    /// When the namespace cannot be entered, or when `f` panics.
    pub fn enter<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        Self::enter_named(&self.name, f)
    }

    /// As [`Netns::enter`], for a namespace another process of the test made (a child process
    /// working in its parent's namespace): by name, without owning it.
    ///
    /// # Panics
    /// As `enter`.
    pub fn enter_named<F, R>(name: &str, f: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let path = format!("/var/run/netns/{name}");
        std::thread::scope(|s| {
            let worker = s.spawn(move || {
                let file = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) => panic!("cannot open {path}: {e}"),
                };
                if let Err(e) = nix_setns(&file) {
                    panic!("cannot enter {path}: {e}");
                }
                f()
            });
            match worker.join() {
                Ok(r) => r,
                Err(p) => std::panic::resume_unwind(p),
            }
        })
    }

    /// Creates a veth pair with one end in `self` and the other in `peer`, each with an
    /// address (CIDR form) and up.
    pub fn veth_to(
        &self,
        peer: &Netns,
        (here, here_addr): (&str, &str),
        (there, there_addr): (&str, &str),
    ) {
        self.run([
            "ip", "link", "add", here, "type", "veth", "peer", "name", there, "netns", &peer.name,
        ]);
        self.run(["ip", "addr", "add", here_addr, "dev", here]);
        self.run(["ip", "link", "set", here, "up"]);
        peer.run(["ip", "addr", "add", there_addr, "dev", there]);
        peer.run(["ip", "link", "set", there, "up"]);
    }
}

fn nix_setns(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // Changes only the calling thread's namespace; the thread is dedicated to it.
    let rc = setns_net(file.as_fd().as_raw_fd());
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// `setns(fd, CLONE_NEWNET)`: moves the calling thread into the network namespace of `fd`;
/// 0 on success, -1 with `errno` set otherwise. Async-signal-safe (usable after `fork`).
pub(crate) fn setns_net(fd: i32) -> i32 {
    // SAFETY: setns only reads its two integer arguments; a bad descriptor is an error return.
    unsafe { libc_setns(fd, CLONE_NEWNET) }
}

const CLONE_NEWNET: i32 = 0x4000_0000;

unsafe extern "C" {
    #[link_name = "setns"]
    fn libc_setns(fd: i32, nstype: i32) -> i32;
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.name]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}
