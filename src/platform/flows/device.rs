//! VPN devices: add (lease → peer row → interface peer → firewall → client config and QR code)
//! and revoke.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use kws_core::{DnsLabel, OwnerId};
use kws_wg::{ClientConfig, DeviceRequest, PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ended_error, finishing, parse_name, undoable};
use crate::platform::{
    Error, Platform, Role, Scope,
    model::DeviceSpec,
    ops::{Begin, Run, begin, request_of},
    store::{Claims, Object, Operation, PlatformStoreExt},
};

pub(crate) const ADD: &str = "add_device";
pub(crate) const REVOKE: &str = "revoke_device";

/// A device to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AddDevice {
    /// Its name, unique in the tenant.
    pub name: String,
    /// The client's own public key (base64); `None` makes kws generate the key pair and put
    /// the private key in the config, shown this once.
    pub public_key: Option<String>,
    /// When it stops being let in, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

impl AddDevice {
    /// A device named `name` with a generated key that never expires.
    pub fn named(name: &str) -> Self {
        Self { name: name.to_owned(), public_key: None, expires_at: None }
    }
}

/// A device just added.
#[derive(Debug, Clone)]
pub struct DeviceAdded {
    /// The device.
    pub device: Object<DeviceSpec>,
    /// Its wg-quick config: with the private key when kws made the key pair and this is the
    /// call that made the device (a retry with the same idempotency key gets the config without
    /// it: kws keeps no private key).
    pub config: ClientConfig,
    /// The operation that added it.
    pub operation: Uuid,
}

/// What the operation records (no private key).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Recorded {
    name: DnsLabel,
    public_key: String,
    expires_at: Option<DateTime<Utc>>,
}

impl Platform {
    /// Adds a VPN device for `tenant` (member role). Fails with `Invalid` (naming the field),
    /// `AlreadyExists` (the name, or the public key), `QuotaExceeded` or `Exhausted`; then
    /// nothing is left: no lease, peer row, interface peer, firewall rule or record.
    pub async fn add_device(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        request: AddDevice,
        idempotency_key: Option<&str>,
    ) -> Result<DeviceAdded, Error> {
        scope.require(tenant, Role::Member)?;
        let name = parse_name("name", &request.name)?;
        let (private_key, public_key) = match &request.public_key {
            Some(raw) => {
                let key =
                    PublicKey::from_base64(raw).map_err(|e| Error::invalid("public_key", e))?;
                (None, key)
            }
            None => {
                let private = PrivateKey::generate().map_err(|e| Error::backend("vpn", e))?;
                let public = private.public_key();
                (Some(private), public)
            }
        };
        if let Some(at) = request.expires_at.filter(|at| *at <= Utc::now()) {
            return Err(Error::invalid("expires_at", format!("{at} is in the past")));
        }
        self.store().get_tenant(scope, tenant).await?;
        // The request as the client sent it decides idempotency: a generated key differs
        // between two tries of the same request.
        let asked = serde_json::json!({ "name": name, "public_key": request.public_key, "expires_at": request.expires_at });
        let recorded = Recorded {
            name: name.clone(),
            public_key: public_key.to_base64(),
            expires_at: request.expires_at,
        };
        let begun =
            begin(self, scope, tenant, ADD, name.as_str(), idempotency_key, &asked, &recorded)
                .await?;
        let run = match begun {
            Begin::New(run) => run,
            Begin::Existing(op) => return self.device_replay(scope, tenant, &name, *op).await,
        };
        let body = async {
            let device = self.add_steps(&run, tenant, &recorded, public_key, private_key).await?;
            let result = serde_json::json!({ "device": device.device.meta.id });
            Ok((device, result))
        };
        undoable(&run, undo_add, body).await
    }

    async fn add_steps(
        &self,
        run: &Run,
        tenant: &OwnerId,
        recorded: &Recorded,
        public_key: PublicKey,
        private_key: Option<PrivateKey>,
    ) -> Result<DeviceAdded, Error> {
        let store = self.store();
        let vpn = self.vpn();
        let name = &recorded.name;
        let spec = DeviceSpec {
            public_key: recorded.public_key.clone(),
            ipv4: None,
            ipv6: None,
            expires_at: recorded.expires_at,
        };
        let unique = Some(format!("public_key:{}", recorded.public_key));
        let origin = Some(run.id());
        let mut device = run
            .step(
                "record",
                store.create(
                    &Scope::Operator,
                    tenant,
                    name,
                    unique,
                    Claims::default(),
                    &spec,
                    origin,
                ),
            )
            .await?;
        let leases = run
            .step("lease", async { vpn.lease_addresses(tenant, name).await.map_err(vpn_error) })
            .await?;
        let mut request = DeviceRequest::new(tenant.clone(), name.clone()).public_key(public_key);
        request.expires_at = recorded.expires_at;
        let peer = vpn.new_peer(&request, public_key, &leases).map_err(vpn_error)?;
        device.spec.ipv4 = Some(peer.ipv4);
        device.spec.ipv6 = peer.ipv6;
        device = store.update(&Scope::Operator, &device).await?;
        run.step("peer", async { vpn.store().insert(&peer).await.map_err(vpn_error) }).await?;
        run.step("interface", async { vpn.attach(&peer).await.map_err(vpn_error) }).await?;
        run.step("firewall", self.apply_firewall()).await?;
        let config = run
            .step("config", async {
                let config = vpn.client_config(&peer, private_key);
                // Rendered once here, so a config that cannot become a QR code fails the add.
                config.qr_png().map_err(vpn_error)?;
                Ok(config)
            })
            .await?;
        self.publish_object(tenant, &device.meta, "created");
        Ok(DeviceAdded { device, config, operation: run.id() })
    }

    /// The answer to a retried add: the device and its config, without a private key.
    async fn device_replay(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &DnsLabel,
        op: Operation,
    ) -> Result<DeviceAdded, Error> {
        if op.state != crate::platform::store::OpState::Succeeded {
            return Err(ended_error(&op));
        }
        let device = self.store().get::<DeviceSpec>(scope, tenant, name.as_str()).await?;
        let peer = self
            .vpn()
            .store()
            .find_by_name(tenant, name)
            .await
            .map_err(vpn_error)?
            .ok_or_else(|| Error::not_found("device", name))?;
        Ok(DeviceAdded { device, config: self.vpn().client_config(&peer, None), operation: op.id })
    }

    /// Revokes a device: off the interface and out of the firewall, its leases released, its
    /// peer row and record deleted. Another tenant's device is `NotFound`.
    pub async fn revoke_device(
        &self,
        scope: &Scope,
        tenant: &OwnerId,
        name: &str,
    ) -> Result<(), Error> {
        scope.require(tenant, Role::Member)?;
        let name = parse_name("name", name)?;
        let device = self.store().get::<DeviceSpec>(scope, tenant, name.as_str()).await?;
        let recorded = Recorded {
            name: name.clone(),
            public_key: device.spec.public_key.clone(),
            expires_at: device.spec.expires_at,
        };
        let begun =
            begin(self, scope, tenant, REVOKE, name.as_str(), None, &recorded, &recorded).await?;
        let run = match begun {
            Begin::New(run) => run,
            Begin::Existing(op) => return Err(ended_error(&op)),
        };
        let body = async {
            self.revoke_steps(&run, tenant, &recorded).await?;
            Ok(((), serde_json::Value::Null))
        };
        finishing(&run, body).await
    }

    async fn revoke_steps(
        &self,
        run: &Run,
        tenant: &OwnerId,
        recorded: &Recorded,
    ) -> Result<(), Error> {
        let key = PublicKey::from_base64(&recorded.public_key).ok();
        let store = self.store();
        let mark =
            store.mark_removing::<DeviceSpec>(&Scope::Operator, tenant, recorded.name.as_str());
        run.step("mark", mark).await?;
        run.step("vpn", async {
            self.vpn().purge_device(tenant, &recorded.name, key).await.map_err(vpn_error)
        })
        .await?;
        run.step("firewall", self.apply_firewall()).await?;
        let removed = run
            .step(
                "record",
                self.store().remove::<DeviceSpec>(&Scope::Operator, tenant, recorded.name.as_str()),
            )
            .await?;
        if let Some(device) = removed {
            self.publish_object(tenant, &device.meta, "deleted");
        }
        Ok(())
    }

    /// Every trace of a device, for a tenant's deletion (the same steps as a revoke).
    pub(crate) async fn purge_device_everywhere(
        &self,
        tenant: &OwnerId,
        device: &Object<DeviceSpec>,
    ) -> Result<(), Error> {
        let key = PublicKey::from_base64(&device.spec.public_key).ok();
        self.vpn().purge_device(tenant, &device.meta.name, key).await.map_err(vpn_error)?;
        self.store()
            .remove::<DeviceSpec>(&Scope::Operator, tenant, device.meta.name.as_str())
            .await?;
        Ok(())
    }
}

pub(crate) fn vpn_error(e: kws_wg::Error) -> Error {
    match e {
        kws_wg::Error::Name(e) => Error::invalid("name", e),
        kws_wg::Error::Key(e) => Error::invalid("public_key", e),
        kws_wg::Error::PoolExhausted { .. }
        | kws_wg::Error::Allocator(kws_ipam::Error::Exhausted { .. }) => {
            Error::Exhausted("the VPN's address pool".to_owned())
        }
        kws_wg::Error::DuplicatePublicKey(key) => {
            Error::AlreadyExists { kind: "public key", name: key.to_base64() }
        }
        e => Error::backend("vpn", e),
    }
}

/// Undoes one step of an add.
pub(crate) fn undo_add<'a>(
    platform: &'a Platform,
    op: &'a Operation,
    step: &'a str,
) -> BoxFuture<'a, Result<(), Error>> {
    Box::pin(async move {
        let recorded = request_of::<Recorded>(op)?;
        let tenant = &op.tenant;
        match step {
            // Each of these is taken back by the one purge, whatever of it happened.
            "lease" | "peer" | "interface" | "firewall" => {
                let key = PublicKey::from_base64(&recorded.public_key).ok();
                platform
                    .vpn()
                    .purge_device(tenant, &recorded.name, key)
                    .await
                    .map_err(vpn_error)?;
                if step == "firewall" {
                    platform.apply_firewall().await?;
                }
                Ok(())
            }
            "record" => platform.remove_own::<DeviceSpec>(op, recorded.name.as_str()).await,
            _ => Ok(()),
        }
    })
}

/// Finishes an interrupted revoke.
pub(crate) fn rerun_revoke(platform: &Platform, run: Run) -> BoxFuture<'_, Result<(), Error>> {
    Box::pin(async move {
        let op = run.operation().await;
        let recorded = request_of::<Recorded>(&op)?;
        platform.revoke_steps(&run, &op.tenant, &recorded).await?;
        run.succeed(serde_json::Value::Null).await;
        Ok(())
    })
}
