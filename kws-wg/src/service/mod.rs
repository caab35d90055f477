//! `VpnService`: an IP allocator, a peer store and a WireGuard device composed into devices
//! that users add, revoke and import.

mod reconcile;
mod request;
mod settings;
mod supervisor;

pub use reconcile::ReconcileReport;
pub use request::{DeviceRequest, NewDevice, PeerView, PurgedDevice};
pub use settings::VpnSettings;
pub use supervisor::{ReconcileTimer, Supervisor};

use std::{collections::HashMap, net::IpAddr, sync::Arc};

use chrono::Utc;
use ipnet::IpNet;
use kws_core::{DnsLabel, OwnerId};
use kws_ipam::{IpAllocator, Lease, LeaseOwner, MemoryAllocator};

use crate::{
    ClientConfig, Error, MemoryDevice, MemoryPeerStore, Peer, PeerStore, PresharedKey, PrivateKey,
    PublicKey, WgDevice, device::WgDeviceExt,
};

/// The VPN of one server interface.
///
/// # Contract
/// - The store is the truth; the interface is made to match it (`reconcile`).
/// - `add_device` either completes (lease, row, interface peer) or leaves nothing behind.
/// - A peer may send only from its own addresses: the server's allowed IPs for it are its
///   `/32` (and `/128`) and nothing else.
#[derive(Debug, Clone)]
pub struct VpnService {
    settings: VpnSettings,
    allocator: Arc<dyn IpAllocator>,
    store: Arc<dyn PeerStore>,
    device: Arc<dyn WgDevice>,
}

impl VpnService {
    /// Composes the parts. The device must be the settings' interface.
    pub fn new(
        settings: VpnSettings,
        allocator: Arc<dyn IpAllocator>,
        store: Arc<dyn PeerStore>,
        device: Arc<dyn WgDevice>,
    ) -> Result<Self, Error> {
        if device.interface() != &settings.interface {
            return Err(Error::InvalidArgument(format!(
                "device is {} but the settings are for {}",
                device.interface(),
                settings.interface
            )));
        }
        Ok(Self { settings, allocator, store, device })
    }

    /// Embedded defaults: in-memory allocator, store and interface, pools created. Nothing
    /// outside this process is touched.
    pub async fn embedded(settings: VpnSettings) -> Result<Self, Error> {
        let device = Arc::new(MemoryDevice::new(settings.interface.clone()));
        let service = Self::new(
            settings,
            Arc::new(MemoryAllocator::new()),
            Arc::new(MemoryPeerStore::new()),
            device,
        )?;
        service.create_pools().await?;
        Ok(service)
    }

    /// Creates the allocator pools the settings name (those that exist are left as they are).
    pub async fn create_pools(&self) -> Result<(), Error> {
        for spec in self.settings.pool_specs() {
            match self.allocator.create_pool(spec).await {
                Ok(()) | Err(kws_ipam::Error::PoolExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The settings.
    pub fn settings(&self) -> &VpnSettings {
        &self.settings
    }

    /// The IP allocator.
    pub fn allocator(&self) -> &Arc<dyn IpAllocator> {
        &self.allocator
    }

    /// The peer store.
    pub fn store(&self) -> &Arc<dyn PeerStore> {
        &self.store
    }

    /// The device.
    pub fn device(&self) -> &Arc<dyn WgDevice> {
        &self.device
    }

    /// The allocator key under which the device `name` of `owner` holds its addresses:
    /// stable per (interface, owner, name), so a retried `add_device` (after a crash between
    /// its steps) gets the same address instead of leaking one.
    pub fn lease_owner(&self, owner: &OwnerId, name: &DnsLabel) -> Result<LeaseOwner, Error> {
        LeaseOwner::new(format!("wg/{}/{owner}/{name}", self.settings.interface))
            .map_err(Error::from)
    }

    /// Adds a device: allocates its address(es), stores the peer and puts it on the interface.
    /// Fails with `DuplicateName`, `DuplicatePublicKey`, `PoolExhausted` or a device error, and
    /// then leaves no lease, no row and no interface peer behind.
    pub async fn add_device(&self, request: DeviceRequest) -> Result<NewDevice, Error> {
        if self.store.find_by_name(&request.owner, &request.name).await?.is_some() {
            return Err(Error::DuplicateName { owner: request.owner, name: request.name });
        }
        let (private_key, public_key) = request::client_key(&request)?;
        if self.store.get(&public_key).await?.is_some() {
            return Err(Error::DuplicatePublicKey(public_key));
        }
        let owner = self.lease_owner(&request.owner, &request.name)?;
        let mut leases = Vec::new();
        let result = self.add_steps(&request, public_key, &owner, &mut leases).await;
        match result {
            Ok(peer) => {
                let config = self.client_config(&peer, private_key);
                Ok(NewDevice { peer, config })
            }
            Err((e, stored)) => {
                self.undo_add(&request, public_key, stored, &leases).await;
                Err(e)
            }
        }
    }

    /// The steps of `add_device`; on failure, says whether the row was stored.
    async fn add_steps(
        &self,
        request: &DeviceRequest,
        public_key: PublicKey,
        owner: &LeaseOwner,
        leases: &mut Vec<Lease>,
    ) -> Result<Peer, (Error, bool)> {
        let fail = |e: Error| (e, false);
        self.lease_into(owner, leases).await.map_err(fail)?;
        let peer = self.new_peer(request, public_key, leases).map_err(fail)?;
        self.store.insert(&peer).await.map_err(fail)?;
        self.attach(&peer).await.map_err(|e| (e, true))?;
        Ok(peer)
    }

    /// Step one of adding a device, on its own: the device's address(es), leased under
    /// [`lease_owner`](Self::lease_owner). Idempotent: a retry (after a crash) gets the same
    /// leases back.
    pub async fn lease_addresses(
        &self,
        owner: &OwnerId,
        name: &DnsLabel,
    ) -> Result<Vec<Lease>, Error> {
        let mut leases = Vec::new();
        self.lease_into(&self.lease_owner(owner, name)?, &mut leases).await?;
        Ok(leases)
    }

    async fn lease_into(&self, owner: &LeaseOwner, leases: &mut Vec<Lease>) -> Result<(), Error> {
        leases.push(self.allocator.allocate(&self.settings.pool_v4, owner).await?);
        if self.settings.subnet_v6.is_some() {
            leases.push(self.allocator.allocate(&self.settings.pool_v6, owner).await?);
        }
        Ok(())
    }

    /// Step two, pure but for the preshared key it generates: the peer row of a device with
    /// these leases (from [`lease_addresses`](Self::lease_addresses)).
    pub fn new_peer(
        &self,
        request: &DeviceRequest,
        public_key: PublicKey,
        leases: &[Lease],
    ) -> Result<Peer, Error> {
        let (ipv4, ipv6) = split_leases(leases)?;
        let preshared_key = match self.settings.preshared_keys {
            true => Some(PresharedKey::generate()?),
            false => None,
        };
        Ok(Peer {
            public_key,
            interface: self.settings.interface.clone(),
            owner: request.owner.clone(),
            name: request.name.clone(),
            ipv4,
            ipv6,
            preshared_key,
            keepalive: self.settings.keepalive,
            created_at: Utc::now(),
            expires_at: request.expires_at,
            enabled: true,
        })
    }

    /// The last step: puts a stored, active peer on the interface (idempotent).
    pub async fn attach(&self, peer: &Peer) -> Result<(), Error> {
        if peer.is_active(Utc::now()) {
            self.device.add_peer(peer.device_config()).await?;
        }
        Ok(())
    }

    /// Takes back every trace of device `name` of `owner`, whatever an interrupted add or
    /// revoke left (a crash between the steps): its row, its interface peer (also `key`'s,
    /// when the row is already gone) and its leases. Idempotent; a device that never existed
    /// is not an error. Says what it found.
    pub async fn purge_device(
        &self,
        owner: &OwnerId,
        name: &DnsLabel,
        key: Option<PublicKey>,
    ) -> Result<PurgedDevice, Error> {
        let mut purged = PurgedDevice::default();
        let row = self.store.find_by_name(owner, name).await?;
        let mut keys: Vec<PublicKey> = key.into_iter().collect();
        if let Some(peer) = &row {
            keys.push(peer.public_key);
            match self.store.remove(&peer.public_key).await {
                Ok(_) => purged.row = true,
                Err(Error::PeerNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        keys.dedup();
        let on_interface: Vec<PublicKey> = {
            let live = self.device.get().await?;
            live.peers.iter().map(|p| p.config.public_key).filter(|k| keys.contains(k)).collect()
        };
        for key in on_interface {
            self.device.remove_peer(key).await?;
            purged.interface = true;
        }
        let holder = self.lease_owner(owner, name)?;
        for pool in [&self.settings.pool_v4, &self.settings.pool_v6] {
            let held = match self.allocator.lookup_owner(pool, &holder).await {
                Ok(held) => held,
                Err(kws_ipam::Error::PoolNotFound(_)) => None,
                Err(e) => return Err(e.into()),
            };
            if let Some(lease) = held {
                match self.allocator.release(pool, lease.addr).await {
                    Ok(_) | Err(kws_ipam::Error::NotAllocated { .. }) => purged.leases += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(purged)
    }

    /// Compensation of a failed `add_device`, in reverse order. A lease is kept only when a
    /// stored peer holds it (a concurrent add of the same device that won).
    async fn undo_add(
        &self,
        request: &DeviceRequest,
        key: PublicKey,
        stored: bool,
        leases: &[Lease],
    ) {
        if stored {
            let _ = self.device.remove_peer(key).await;
            if let Err(e) = self.store.remove(&key).await {
                tracing::warn!(%key, error = %e, "add_device: could not remove the stored peer");
            }
        }
        let holder = self.store.find_by_name(&request.owner, &request.name).await.ok().flatten();
        for lease in leases {
            let held = holder.as_ref().is_some_and(|p| peer_holds(p, lease.addr));
            if !held {
                if let Err(e) = self.allocator.release(&lease.pool, lease.addr).await {
                    tracing::warn!(addr = %lease.addr, error = %e, "add_device: lease not released");
                }
            }
        }
    }

    /// Revokes a device: deletes its row first (so nothing can bring it back), takes it off the
    /// interface and releases its addresses. `PeerNotFound` for an unknown key.
    pub async fn revoke(&self, key: &PublicKey) -> Result<Peer, Error> {
        let peer = self.store.remove(key).await?;
        let device = self.device.remove_peer(*key).await;
        for (pool, addr) in self.pools_of(&peer) {
            match self.allocator.release(pool, addr).await {
                Ok(_) | Err(kws_ipam::Error::NotAllocated { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // The row is gone: a failed interface removal is repaired by the next reconcile.
        device?;
        Ok(peer)
    }

    /// Enables a disabled device (idempotent).
    pub async fn enable(&self, key: &PublicKey) -> Result<Peer, Error> {
        let peer = self.store.set_enabled(key, true).await?;
        if peer.is_active(Utc::now()) {
            self.device.add_peer(peer.device_config()).await?;
        }
        Ok(peer)
    }

    /// Disables a device: it stays stored, off the interface (idempotent).
    pub async fn disable(&self, key: &PublicKey) -> Result<Peer, Error> {
        let peer = self.store.set_enabled(key, false).await?;
        self.device.remove_peer(*key).await?;
        Ok(peer)
    }

    /// Every stored peer of the interface with its live handshake and counters.
    pub async fn list(&self) -> Result<Vec<PeerView>, Error> {
        let peers = self.store.list(&self.settings.interface).await?;
        let live: HashMap<PublicKey, _> =
            self.device.get().await?.peers.into_iter().map(|s| (s.config.public_key, s)).collect();
        Ok(peers
            .into_iter()
            .map(|peer| {
                let status = live.get(&peer.public_key);
                PeerView {
                    on_interface: status.is_some(),
                    last_handshake: status.and_then(|s| s.last_handshake),
                    rx_bytes: status.map_or(0, |s| s.rx_bytes),
                    tx_bytes: status.map_or(0, |s| s.tx_bytes),
                    peer,
                }
            })
            .collect())
    }

    /// The client config of `peer`; `private_key` is the client's key when kws holds it.
    pub fn client_config(&self, peer: &Peer, private_key: Option<PrivateKey>) -> ClientConfig {
        let s = &self.settings;
        let mut addresses: Vec<IpNet> = vec![IpNet::from(IpAddr::V4(peer.ipv4))];
        addresses.extend(peer.ipv6.map(|a| IpNet::from(IpAddr::V6(a))));
        ClientConfig {
            private_key,
            addresses,
            dns: s.dns.clone(),
            server_public_key: s.server_key.public_key(),
            preshared_key: peer.preshared_key.clone(),
            endpoint: s.endpoint.clone(),
            allowed_ips: s.client_allowed_ips(),
            keepalive: peer.keepalive,
        }
    }

    fn pools_of<'a>(&'a self, peer: &Peer) -> Vec<(&'a DnsLabel, IpAddr)> {
        let mut out = vec![(&self.settings.pool_v4, IpAddr::V4(peer.ipv4))];
        out.extend(peer.ipv6.map(|a| (&self.settings.pool_v6, IpAddr::V6(a))));
        out
    }
}

fn peer_holds(peer: &Peer, addr: IpAddr) -> bool {
    IpAddr::V4(peer.ipv4) == addr || peer.ipv6.map(IpAddr::V6) == Some(addr)
}

fn split_leases(
    leases: &[Lease],
) -> Result<(std::net::Ipv4Addr, Option<std::net::Ipv6Addr>), Error> {
    let mut v4 = None;
    let mut v6 = None;
    for lease in leases {
        match lease.addr {
            IpAddr::V4(a) => v4 = Some(a),
            IpAddr::V6(a) => v6 = Some(a),
        }
    }
    let v4 = v4.ok_or_else(|| {
        Error::InvalidArgument("the IPv4 pool handed out a non-IPv4 address".to_owned())
    })?;
    Ok((v4, v6))
}
