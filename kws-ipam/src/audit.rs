//! A snapshot of one pool for invariant checks (stress, crash and property tests).

use std::{collections::HashSet, net::IpAddr};

use crate::{
    Lease,
    pool::{Cursor, PoolLayout},
};

/// Where every usable address of a pool is, at one moment.
#[derive(Debug, Clone)]
pub struct Audit {
    /// Usable addresses.
    pub capacity: u128,
    /// Live leases.
    pub leases: Vec<Lease>,
    /// Addresses free to hand out (released, in quarantine or not, and fresh ones taken from
    /// the cursor but not leased yet), sorted.
    pub free: Vec<IpAddr>,
    /// Usable addresses neither leased nor free: ahead of the cursor and never handed out.
    pub never_handed_out: u128,
}

impl Audit {
    pub(crate) fn new(
        layout: &PoolLayout,
        cursor: Cursor,
        leases: Vec<Lease>,
        mut free: Vec<IpAddr>,
    ) -> Self {
        free.sort();
        let ahead = |a: &IpAddr| layout.host_of(*a).is_some_and(|h| layout.is_ahead(&cursor, h));
        let taken_ahead = leases.iter().filter(|l| ahead(&l.addr)).count()
            + free.iter().filter(|a| ahead(a)).count();
        let never_handed_out = layout.remaining(&cursor).saturating_sub(taken_ahead as u128);
        Self { capacity: layout.capacity(), leases, free, never_handed_out }
    }

    /// What is wrong: an address leased twice, free twice, both leased and free, or
    /// leased + free + never handed out != capacity. Empty when all is well.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut leased = HashSet::new();
        let mut owners = HashSet::new();
        for l in &self.leases {
            if !leased.insert(l.addr) {
                out.push(format!("{} is leased twice", l.addr));
            }
            if !owners.insert(&l.owner) {
                out.push(format!("{} holds two leases", l.owner));
            }
        }
        let mut free = HashSet::new();
        for a in &self.free {
            if !free.insert(*a) {
                out.push(format!("{a} is free twice"));
            }
            if leased.contains(a) {
                out.push(format!("{a} is both leased and free"));
            }
        }
        let total = self.leases.len() as u128 + self.free.len() as u128 + self.never_handed_out;
        if total != self.capacity {
            out.push(format!(
                "leased {} + free {} + never handed out {} = {total}, capacity {}",
                self.leases.len(),
                self.free.len(),
                self.never_handed_out,
                self.capacity
            ));
        }
        out
    }
}
