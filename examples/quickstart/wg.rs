//! The VPN: add a device, get its wg-quick config and QR code, revoke it.

use kws::wg::{DeviceRequest, Endpoint, PrivateKey, VpnService, VpnSettings};

pub(crate) fn show() -> Result<(), Box<dyn std::error::Error>> {
    println!("== VPN devices (kws-wg)");
    let settings = VpnSettings::new(
        "wg0".parse()?,
        PrivateKey::generate()?,
        Endpoint::parse("vpn.example.org:51820")?,
        "10.8.0.0/24".parse()?,
    )?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let vpn = VpnService::embedded(settings).await?;
        let device = vpn.add_device(DeviceRequest::parse("alice", "laptop", None)?).await?;
        println!("alice's laptop is {} on the VPN; its wg-quick config:\n", device.peer.ipv4);
        println!("{}", device.config.render());
        println!("{}", device.config.qr_text()?);
        let phone = vpn.add_device(DeviceRequest::parse("alice", "phone", None)?).await?;
        println!("alice's phone is {}", phone.peer.ipv4);
        match vpn.add_device(DeviceRequest::parse("alice", "laptop", None)?).await {
            Ok(_) => return Err("a duplicate device name was accepted".into()),
            Err(e) => println!("refused: {e}"),
        }
        vpn.revoke(&phone.peer.public_key).await?;
        println!("revoked the phone; {} device(s) left\n", vpn.list().await?.len());
        Ok(())
    })
}
