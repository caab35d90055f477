//! An embedded userspace interface (feature `boringtun`): Cloudflare's boringtun runs inside this
//! process, in the interface's network namespace, and serves the same UAPI socket as
//! wireguard-go, so `UapiDevice` drives both.

use std::{sync::mpsc, thread::JoinHandle};

use boringtun::device::{DeviceConfig, DeviceHandle};
use ipnet::IpNet;
use kws_core::{DnsLabel, IfName};

use crate::{
    Error,
    device::{UapiDevice, link},
};

/// How to start one embedded boringtun interface.
#[derive(Debug, Clone)]
pub struct Boringtun {
    interface: IfName,
    netns: Option<DnsLabel>,
    addresses: Vec<IpNet>,
    threads: usize,
}

/// A running embedded interface; stopped (its tun device and socket removed) when dropped.
#[derive(Debug)]
pub struct EmbeddedInterface {
    interface: IfName,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Boringtun {
    /// An interface in this network namespace, with no addresses and 2 worker threads.
    pub fn new(interface: IfName) -> Self {
        Self { interface, netns: None, addresses: Vec::new(), threads: 2 }
    }

    /// Creates the interface inside the named network namespace.
    pub fn netns(mut self, name: DnsLabel) -> Self {
        self.netns = Some(name);
        self
    }

    /// Gives the interface this address (and the route of its prefix).
    pub fn address(mut self, addr: IpNet) -> Self {
        self.addresses.push(addr);
        self
    }

    /// How many packet-processing threads boringtun runs.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    /// A UAPI client for the interface.
    pub fn device(&self) -> UapiDevice {
        UapiDevice::new(self.interface.clone())
    }

    fn failed(&self, context: String, source: std::io::Error) -> Error {
        Error::DeviceIo { interface: self.interface.clone(), context, source }
    }

    /// Creates the tun device and its UAPI socket on a thread that has entered the namespace
    /// (boringtun's worker threads inherit it), then sets the addresses and brings it up.
    pub async fn start(&self) -> Result<EmbeddedInterface, Error> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (name, netns, threads) = (self.interface.clone(), self.netns.clone(), self.threads);
        let thread = std::thread::Builder::new()
            .name(format!("boringtun-{name}"))
            .spawn(move || {
                if let Some(ns) = &netns {
                    if let Err(e) = link::enter_netns(ns) {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                }
                let config = DeviceConfig { n_threads: threads, ..DeviceConfig::default() };
                match DeviceHandle::new(name.as_str(), config) {
                    Ok(handle) => {
                        let _ = ready_tx.send(Ok(()));
                        // Runs until the owner stops it (or goes away); dropping the handle
                        // stops boringtun's threads and removes its socket.
                        let _ = stop_rx.recv();
                        drop(handle);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("{e:?}")));
                    }
                }
            })
            .map_err(|e| self.failed("cannot start the boringtun thread".into(), e))?;
        let mut running = EmbeddedInterface {
            interface: self.interface.clone(),
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        match ready_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                running.stop_now();
                return Err(self.failed(format!("boringtun: {why}"), std::io::Error::other(why)));
            }
            Err(_) => {
                running.stop_now();
                let e = std::io::Error::other("thread ended");
                return Err(self.failed("boringtun thread ended".into(), e));
            }
        }
        link::set_up(&self.interface, self.netns.as_ref(), &self.addresses).await?;
        Ok(running)
    }
}

impl EmbeddedInterface {
    /// The interface's name.
    pub fn interface(&self) -> &IfName {
        &self.interface
    }

    fn stop_now(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for EmbeddedInterface {
    fn drop(&mut self) {
        self.stop_now();
    }
}
