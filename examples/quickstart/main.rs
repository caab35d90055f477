//! The quickstart: what kws can do, on embedded defaults (no services, no root).
//!
//! `cargo run --example quickstart`. Each capability shows its part in a module of this folder.

#[cfg(feature = "hostnet")]
mod hostnet;
#[cfg(feature = "ipam")]
mod ipam;
mod names;
#[cfg(feature = "proxy")]
mod proxy;
#[cfg(feature = "wg")]
mod wg;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "kws quickstart (embedded defaults: in-memory stores, nothing outside this process)\n"
    );
    names::show()?;
    #[cfg(feature = "ipam")]
    tokio::runtime::Runtime::new()?.block_on(ipam::show())?;
    #[cfg(feature = "hostnet")]
    hostnet::show()?;
    #[cfg(feature = "wg")]
    wg::show()?;
    #[cfg(feature = "proxy")]
    proxy::show()?;
    Ok(())
}
