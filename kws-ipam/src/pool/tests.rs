use std::{net::IpAddr, time::Duration};

use ipnet::IpNet;
use kws_core::DnsLabel;

use super::{Placement, PoolLayout, Segment};
use crate::{Error, Gateway, PoolSpec};

fn spec(prefix: &str) -> PoolSpec {
    let name = DnsLabel::parse("p").expect("label");
    PoolSpec::new(name, prefix.parse::<IpNet>().expect("prefix"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn layout(prefix: &str) -> PoolLayout {
    PoolLayout::new(&spec(prefix)).expect("valid pool")
}

fn walk(l: &PoolLayout) -> Vec<IpAddr> {
    let mut c = l.start();
    std::iter::from_fn(|| l.advance(&mut c)).map(|h| l.addr_of(h)).collect()
}

#[test]
fn ipv4_reserves_network_broadcast_and_gateway() {
    let l = layout("192.168.7.0/29");
    assert_eq!(l.capacity(), 5);
    let all = walk(&l);
    let want: Vec<IpAddr> = (2..=6).map(|i| ip(&format!("192.168.7.{i}"))).collect();
    assert_eq!(all, want);
    assert_eq!(l.place(ip("192.168.7.0")), Placement::Reserved);
    assert_eq!(l.place(ip("192.168.7.1")), Placement::Reserved);
    assert_eq!(l.place(ip("192.168.7.7")), Placement::Reserved);
    assert_eq!(l.place(ip("192.168.7.8")), Placement::Outside);
    assert_eq!(l.place(ip("::1")), Placement::Outside);
    assert_eq!(l.place(ip("192.168.7.3")), Placement::Usable(3));
}

#[test]
fn any_base_and_length_works() {
    for (prefix, cap) in [
        ("10.0.0.0/8", (1u128 << 24) - 3),
        ("172.20.0.0/14", (1 << 18) - 3),
        ("100.64.12.0/22", (1 << 10) - 3),
        ("0.0.0.0/0", (1 << 32) - 3),
        ("fd00:1::/64", (1 << 64) - 2),
        ("fd00:2::/120", 254),
        ("::/0", u128::MAX - 1),
    ] {
        let l = layout(prefix);
        assert_eq!(l.capacity(), cap, "{prefix}");
        let net: IpNet = prefix.parse().expect("prefix");
        let mut c = l.start();
        let first = l.advance(&mut c).map(|h| l.addr_of(h)).expect("first");
        assert!(net.contains(&first), "{prefix}: {first}");
        assert_eq!(l.host_of(first), Some(2), "{prefix}");
    }
}

#[test]
fn point_to_point_pools_use_every_address() {
    assert_eq!(walk(&layout("10.9.9.4/31")), vec![ip("10.9.9.4"), ip("10.9.9.5")]);
    assert_eq!(walk(&layout("10.9.9.9/32")), vec![ip("10.9.9.9")]);
    assert_eq!(walk(&layout("fd00::4/127")), vec![ip("fd00::4"), ip("fd00::5")]);
    assert_eq!(walk(&layout("fd00::9/128")), vec![ip("fd00::9")]);
    let mut s = spec("10.9.9.4/31");
    s.gateway = Gateway::Address(ip("10.9.9.4"));
    assert_eq!(walk(&PoolLayout::new(&s).expect("pool")), vec![ip("10.9.9.5")]);
}

#[test]
fn ipv6_has_no_broadcast() {
    let l = layout("fd00:2::/126");
    assert_eq!(walk(&l), vec![ip("fd00:2::2"), ip("fd00:2::3")]);
}

#[test]
fn gateway_and_reservations_split_segments() {
    let mut s = spec("10.1.0.0/24");
    s.gateway = Gateway::Address(ip("10.1.0.254"));
    s.reserved = vec![ip("10.1.0.10")..=ip("10.1.0.19"), ip("10.1.0.15")..=ip("10.1.0.30")];
    s.quarantine = Duration::from_secs(1);
    let l = PoolLayout::new(&s).expect("pool");
    assert_eq!(l.segments(), &[Segment { first: 1, last: 9 }, Segment { first: 31, last: 253 }]);
    assert_eq!(l.capacity(), 9 + 223);
    assert_eq!(l.place(ip("10.1.0.1")), Placement::Usable(1));
    assert_eq!(l.place(ip("10.1.0.20")), Placement::Reserved);
    let mut c = l.start();
    let hosts: Vec<u128> = std::iter::from_fn(|| l.advance(&mut c)).collect();
    assert_eq!(hosts.len() as u128, l.capacity());
    assert_eq!(hosts[8..10], [9, 31]);
    assert_eq!(l.remaining(&c), 0);
    assert_eq!(l.remaining(&l.start()), l.capacity());
}

#[test]
fn no_gateway_frees_the_first_host() {
    let mut s = spec("10.2.0.0/30");
    s.gateway = Gateway::None;
    assert_eq!(walk(&PoolLayout::new(&s).expect("pool")), vec![ip("10.2.0.1"), ip("10.2.0.2")]);
}

#[test]
fn inconsistent_pools_are_refused_naming_the_problem() {
    let invalid = |s: PoolSpec, needle: &str| match PoolLayout::new(&s) {
        Err(Error::InvalidPool(msg)) => assert!(msg.contains(needle), "{msg} lacks {needle}"),
        other => panic!("expected InvalidPool({needle}), got {other:?}"),
    };
    invalid(spec("10.0.0.1/24"), "host bits");
    let mut s = spec("10.0.0.0/24");
    s.gateway = Gateway::Address(ip("10.0.1.1"));
    invalid(s, "gateway 10.0.1.1");
    let mut s = spec("10.0.0.0/24");
    s.gateway = Gateway::Address(ip("10.0.0.255"));
    invalid(s, "gateway 10.0.0.255");
    let mut s = spec("10.0.0.0/24");
    s.reserved = vec![ip("10.0.0.9")..=ip("10.0.0.3")];
    invalid(s, "reversed");
    let mut s = spec("10.0.0.0/24");
    s.reserved = vec![ip("10.0.0.9")..=ip("fd00::1")];
    invalid(s, "not inside");
    let mut s = spec("10.0.0.0/30");
    s.reserved = vec![ip("10.0.0.2")..=ip("10.0.0.2")];
    invalid(s, "no usable address");
}

#[test]
fn overlap_is_symmetric_and_family_aware() {
    let a = layout("10.0.0.0/16");
    assert!(a.overlaps(&layout("10.0.3.0/24")));
    assert!(layout("10.0.3.0/24").overlaps(&a));
    assert!(!a.overlaps(&layout("10.1.0.0/16")));
    assert!(!a.overlaps(&layout("fd00::/8")));
}
