//! The quickstart: what kws can do, on embedded defaults (no services, no root).
//!
//! `cargo run --example quickstart`. The vocabulary and the allocator show their part alone;
//! everything else runs as the Platform's flows.

#[cfg(feature = "ipam")]
mod ipam;
mod names;
#[cfg(feature = "platform")]
mod platform;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "kws quickstart (embedded defaults: in-memory stores, nothing outside this process)\n"
    );
    names::show()?;
    let rt = tokio::runtime::Runtime::new()?;
    #[cfg(feature = "ipam")]
    rt.block_on(ipam::show())?;
    #[cfg(feature = "platform")]
    rt.block_on(platform::show())?;
    Ok(())
}
