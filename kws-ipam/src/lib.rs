//! kws-ipam hands out IP addresses from IPv4 and IPv6 pools in constant time, whatever the
//! pool size or fill level, on memory, Redis, PostgreSQL, or PostgreSQL with Redis as a fast path.
//! Every VPN peer and every instance gets its address here; the `IpAllocator` trait is the contract.
