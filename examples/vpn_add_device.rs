//! Adds a VPN device on embedded defaults (in-memory allocator, store and interface) and prints
//! its wg-quick config and its QR code as terminal text; with a third argument, also writes the
//! QR code as a PNG file there.
//!
//! `cargo run --example vpn_add_device [owner] [device-name] [qr.png]`

use kws::wg::{DeviceRequest, Endpoint, PrivateKey, VpnService, VpnSettings};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let owner = args.first().map_or("alice", String::as_str);
    let name = args.get(1).map_or("laptop", String::as_str);
    // Outside input is parsed once, here: a bad owner or name is a typed error.
    let request = DeviceRequest::parse(owner, name, None)?;

    let mut settings = VpnSettings::new(
        "wg0".parse()?,
        PrivateKey::generate()?,
        Endpoint::parse("vpn.example.org:51820")?,
        "10.8.0.0/24".parse()?,
    )?;
    settings.dns = vec!["10.8.0.1".parse()?];
    settings.routed_subnets = vec!["10.20.0.0/16".parse()?];

    tokio::runtime::Runtime::new()?.block_on(async {
        let vpn = VpnService::embedded(settings).await?;
        let device = vpn.add_device(request).await?;
        let peer = &device.peer;
        println!(
            "added {} of {} at {} (key {})\n",
            peer.name, peer.owner, peer.ipv4, peer.public_key
        );
        println!("{}", device.config.render());
        println!("{}", device.config.qr_text()?);
        if let Some(path) = args.get(2) {
            std::fs::write(path, device.config.qr_png()?)?;
            println!("QR code written to {path}");
        }
        Ok(())
    })
}
