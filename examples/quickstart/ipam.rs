//! IP allocation (kws-ipam) on the embedded default, `MemoryAllocator`: an IPv4 /8 and an
//! IPv6 /64, FIFO reuse, a static address and a refused overlapping pool.

use kws::core::DnsLabel;
use kws::ipam::{IpAllocator, LeaseOwner, MemoryAllocator, PoolSpec};

pub(crate) async fn show() -> Result<(), Box<dyn std::error::Error>> {
    println!("== IP allocation (kws-ipam, in memory)");
    let ipam = MemoryAllocator::new();
    let instances = DnsLabel::parse("instances")?;
    let vpn = DnsLabel::parse("vpn6")?;
    ipam.create_pool(PoolSpec::new(instances.clone(), "10.0.0.0/8".parse()?)).await?;
    ipam.create_pool(PoolSpec::new(vpn.clone(), "fd00:6b77::/64".parse()?)).await?;
    let usage = ipam.usage(&instances).await?;
    println!("pool instances 10.0.0.0/8: {} usable addresses (gateway 10.0.0.1)", usage.capacity);
    let mut leases = Vec::new();
    for who in ["alice-ide", "bob-api", "carol-db"] {
        let lease = ipam.allocate(&instances, &LeaseOwner::new(who)?).await?;
        println!("  {who} -> {}", lease.addr);
        leases.push(lease);
    }
    let again = ipam.allocate(&instances, &LeaseOwner::new("bob-api")?).await?;
    println!("  bob-api again -> {} (idempotent)", again.addr);
    let fixed = ipam
        .allocate_specific(&instances, "10.255.255.254".parse()?, &LeaseOwner::new("static")?)
        .await?;
    println!("  static -> {} (allocate_specific; nothing below it is stranded)", fixed.addr);
    ipam.release(&instances, leases[0].addr).await?;
    ipam.release(&instances, leases[2].addr).await?;
    let next = ipam.allocate(&instances, &LeaseOwner::new("dave")?).await?;
    println!(
        "  released {} then {}; dave -> {} (FIFO: oldest released first)",
        leases[0].addr, leases[2].addr, next.addr
    );
    for who in ["peer-laptop", "peer-phone"] {
        let lease = ipam.allocate(&vpn, &LeaseOwner::new(who)?).await?;
        println!("  {who} -> {} (IPv6 /64)", lease.addr);
    }
    let overlap = PoolSpec::new(DnsLabel::parse("overlap")?, "10.20.0.0/16".parse()?);
    match ipam.create_pool(overlap).await {
        Ok(()) => return Err("an overlapping pool was accepted".into()),
        Err(e) => println!("refused: {e}"),
    }
    println!();
    Ok(())
}
