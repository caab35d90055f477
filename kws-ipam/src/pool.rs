//! Pure pool arithmetic: host number <-> address as u128 arithmetic, the usable segments of a
//! pool (its prefix less network, IPv4 broadcast, gateway and reservations), and the cursor
//! that walks them. Every backend builds on this; none of it does I/O.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use ipnet::IpNet;

use kws_core::DnsLabel;

use crate::{Error, Gateway, PoolSpec};

/// An inclusive run of usable host numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// The first host number of the run.
    pub first: u128,
    /// The last host number of the run.
    pub last: u128,
}

impl Segment {
    /// How many host numbers the run holds.
    pub fn len(&self) -> u128 {
        // A segment never spans all 2^128 numbers: the network address of a /0 is reserved.
        self.last - self.first + 1
    }

    /// Always false: a segment holds at least one host number.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Where an address falls in a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A usable host number.
    Usable(u128),
    /// Inside the prefix but never handed out (network, broadcast, gateway, reservation).
    Reserved,
    /// Not inside the prefix (or the other address family).
    Outside,
}

/// The arithmetic of one pool, computed once from its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolLayout {
    name: DnsLabel,
    quarantine: Duration,
    prefix: IpNet,
    base: u128,
    last: u128,
    segments: Vec<Segment>,
    capacity: u128,
}

impl PoolLayout {
    /// Checks `spec` and computes its usable segments.
    ///
    /// Refused with `InvalidPool`: host bits set in the prefix, a gateway or reservation outside
    /// the prefix or of the other family, a reversed range, a gateway on the network or
    /// broadcast address, and a pool left with no usable address.
    pub fn new(spec: &PoolSpec) -> Result<Self, Error> {
        let prefix = spec.prefix;
        let invalid =
            |why: String| Error::InvalidPool(format!("pool {} ({prefix}): {why}", spec.name));
        if prefix.trunc() != prefix {
            return Err(invalid(format!("host bits are set; the network is {}", prefix.trunc())));
        }
        let base = to_u128(prefix.network());
        let host_bits = u32::from(prefix.max_prefix_len() - prefix.prefix_len());
        let last = if host_bits == 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
        let point_to_point = host_bits <= 1;
        // RFC 3021 (and its IPv6 analogue): /31, /32, /127 and /128 have no network or
        // broadcast address. Otherwise the network address is reserved, and in IPv4 the
        // broadcast address too.
        let (lo, hi) = match (point_to_point, prefix) {
            (true, _) => (0, last),
            (false, IpNet::V4(_)) => (1, last - 1),
            (false, IpNet::V6(_)) => (1, last),
        };
        let mut layout = Self {
            name: spec.name.clone(),
            quarantine: spec.quarantine,
            prefix,
            base,
            last,
            segments: vec![Segment { first: lo, last: hi }],
            capacity: 0,
        };
        let mut holes = Vec::with_capacity(spec.reserved.len() + 1);
        match spec.gateway {
            Gateway::FirstHost if !point_to_point => holes.push((lo, lo)),
            Gateway::FirstHost | Gateway::None => {}
            Gateway::Address(gw) => match layout.place_in_range(gw, lo, hi) {
                Some(h) => holes.push((h, h)),
                None => return Err(invalid(format!("gateway {gw} is not a usable host of it"))),
            },
        }
        for range in &spec.reserved {
            let (start, end) = (*range.start(), *range.end());
            let (Some(a), Some(b)) = (layout.host_of(start), layout.host_of(end)) else {
                return Err(invalid(format!("reservation {start}-{end} is not inside it")));
            };
            if a > b {
                return Err(invalid(format!("reservation {start}-{end} is reversed")));
            }
            holes.push((a, b));
        }
        layout.segments = subtract(lo, hi, holes);
        layout.capacity = layout.segments.iter().map(Segment::len).sum();
        if layout.capacity == 0 {
            return Err(invalid("no usable address is left".into()));
        }
        Ok(layout)
    }

    /// The pool's name.
    pub fn name(&self) -> &DnsLabel {
        &self.name
    }

    /// How long a released address rests before it is handed out again.
    pub fn quarantine(&self) -> Duration {
        self.quarantine
    }

    /// The prefix.
    pub fn prefix(&self) -> IpNet {
        self.prefix
    }

    /// The usable host numbers, as sorted, disjoint, non-adjacent runs.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// How many addresses can be handed out.
    pub fn capacity(&self) -> u128 {
        self.capacity
    }

    /// True when the two prefixes share an address.
    pub fn overlaps(&self, other: &PoolLayout) -> bool {
        self.prefix.contains(&other.prefix.network())
            || other.prefix.contains(&self.prefix.network())
    }

    /// The host number of `addr`, when it is inside the prefix.
    pub fn host_of(&self, addr: IpAddr) -> Option<u128> {
        let same_family = matches!(
            (self.prefix, addr),
            (IpNet::V4(_), IpAddr::V4(_)) | (IpNet::V6(_), IpAddr::V6(_))
        );
        // Inside the prefix exactly when the bits above the host bits are the network's.
        let n = to_u128(addr);
        (same_family && n & !self.last == self.base).then(|| n - self.base)
    }

    /// The address of host number `host`.
    ///
    /// Host numbers past the prefix wrap inside it; callers pass host numbers of this pool.
    pub fn addr_of(&self, host: u128) -> IpAddr {
        let n = self.base | (host & self.last);
        match self.prefix {
            // The prefix is IPv4, so `n` fits in 32 bits.
            IpNet::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
            IpNet::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
        }
    }

    /// Where `addr` falls: a usable host number, reserved, or outside.
    pub fn place(&self, addr: IpAddr) -> Placement {
        let Some(host) = self.host_of(addr) else { return Placement::Outside };
        if self.is_usable(host) { Placement::Usable(host) } else { Placement::Reserved }
    }

    /// The host number of `addr` when it may be handed out; `OutOfPool` or `Reserved` (naming
    /// the address and the pool) otherwise.
    pub fn usable_host(&self, addr: IpAddr) -> Result<u128, Error> {
        match self.place(addr) {
            Placement::Usable(h) => Ok(h),
            Placement::Reserved => Err(Error::Reserved { pool: self.name.clone(), addr }),
            Placement::Outside => Err(Error::OutOfPool { pool: self.name.clone(), addr }),
        }
    }

    /// The host number of `addr` when it may be leased, `None` for a reserved address (which
    /// nobody can hold), `OutOfPool` outside the prefix: what `release` and `lookup` need.
    pub fn leasable_host(&self, addr: IpAddr) -> Result<Option<u128>, Error> {
        match self.place(addr) {
            Placement::Usable(h) => Ok(Some(h)),
            Placement::Reserved => Ok(None),
            Placement::Outside => Err(Error::OutOfPool { pool: self.name.clone(), addr }),
        }
    }

    /// True when `host` may be handed out. O(log segments).
    pub fn is_usable(&self, host: u128) -> bool {
        let i = self.segments.partition_point(|s| s.last < host);
        self.segments.get(i).is_some_and(|s| s.first <= host)
    }

    /// The cursor at the first usable host.
    pub fn start(&self) -> Cursor {
        Cursor { segment: 0, next: self.segments.first().map_or(0, |s| s.first) }
    }

    /// Takes the host number under `cursor` and moves it on; `None` once every segment is
    /// walked. O(1).
    pub fn advance(&self, cursor: &mut Cursor) -> Option<u128> {
        let seg = self.segments.get(cursor.segment)?;
        let host = cursor.next;
        if host == seg.last {
            cursor.segment += 1;
            cursor.next = self.segments.get(cursor.segment).map_or(0, |s| s.first);
        } else {
            cursor.next += 1;
        }
        Some(host)
    }

    /// How many usable host numbers the cursor has not reached yet. O(segments).
    pub fn remaining(&self, cursor: &Cursor) -> u128 {
        let Some(seg) = self.segments.get(cursor.segment) else { return 0 };
        let rest: u128 = self.segments[cursor.segment + 1..].iter().map(Segment::len).sum();
        seg.last - cursor.next + 1 + rest
    }

    /// True when the cursor has not reached `host` yet. O(log segments).
    pub fn is_ahead(&self, cursor: &Cursor, host: u128) -> bool {
        if cursor.segment >= self.segments.len() {
            return false;
        }
        let i = self.segments.partition_point(|s| s.last < host);
        i > cursor.segment || (i == cursor.segment && host >= cursor.next)
    }

    fn place_in_range(&self, addr: IpAddr, lo: u128, hi: u128) -> Option<u128> {
        self.host_of(addr).filter(|h| (lo..=hi).contains(h))
    }
}

/// The next fresh host number of a pool: which segment, and the host number in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Index of the segment (equal to the segment count once exhausted).
    pub segment: usize,
    /// The next host number to hand out in that segment.
    pub next: u128,
}

/// An address as a number (IPv4 in the low 32 bits).
pub fn to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// `[lo, hi]` less the `holes`, as sorted, disjoint runs.
fn subtract(lo: u128, hi: u128, mut holes: Vec<(u128, u128)>) -> Vec<Segment> {
    holes.sort_unstable();
    let mut out = Vec::new();
    let mut next = Some(lo);
    for (a, b) in holes {
        let Some(from) = next else { break };
        if b < from {
            continue;
        }
        if a > from {
            out.push(Segment { first: from, last: (a - 1).min(hi) });
        }
        next = b.checked_add(1);
    }
    if let Some(from) = next.filter(|f| *f <= hi) {
        out.push(Segment { first: from, last: hi });
    }
    out.retain(|s| s.first <= s.last && s.first <= hi);
    out
}

#[cfg(test)]
mod tests;
