//! Live leases of one pool, indexed by host number and by owner, in about 50 bytes per lease
//! beside the owner string: one 32-byte slot in a slab plus a 4-byte index in each of two hash
//! tables.

use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

#[derive(Debug)]
struct Slot {
    host: u128,
    owner: Box<str>,
}

/// The leases of one pool.
#[derive(Debug, Default)]
pub(crate) struct LeaseTable {
    slots: Vec<Slot>,
    vacant: Vec<u32>,
    by_host: HashTable<u32>,
    by_owner: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl LeaseTable {
    /// How many leases are live.
    pub(crate) fn len(&self) -> usize {
        self.by_host.len()
    }

    /// The owner holding `host`.
    pub(crate) fn holder(&self, host: u128) -> Option<&str> {
        let hash = self.hasher.hash_one(host);
        let slot = self.by_host.find(hash, |&i| self.slots[i as usize].host == host)?;
        Some(&self.slots[*slot as usize].owner)
    }

    /// True when `host` is leased.
    pub(crate) fn contains(&self, host: u128) -> bool {
        self.holder(host).is_some()
    }

    /// The host `owner` holds.
    pub(crate) fn held_by(&self, owner: &str) -> Option<u128> {
        let hash = self.hasher.hash_one(owner);
        let slot = self.by_owner.find(hash, |&i| &*self.slots[i as usize].owner == owner)?;
        Some(self.slots[*slot as usize].host)
    }

    /// Records that `owner` holds `host`. The caller has checked that neither is taken.
    pub(crate) fn insert(&mut self, host: u128, owner: &str) {
        let slot = Slot { host, owner: owner.into() };
        let i = match self.vacant.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                // More than u32::MAX live leases would not fit in memory anyway (32 B each).
                let i = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
                self.slots.push(slot);
                i
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        let rehash_host = |&j: &u32| hasher.hash_one(slots[j as usize].host);
        self.by_host.insert_unique(hasher.hash_one(host), i, rehash_host);
        let rehash_owner = |&j: &u32| hasher.hash_one(&*slots[j as usize].owner);
        self.by_owner.insert_unique(hasher.hash_one(owner), i, rehash_owner);
    }

    /// Ends the lease on `host`, returning its owner.
    pub(crate) fn remove(&mut self, host: u128) -> Option<Box<str>> {
        let slots = &self.slots;
        let hash = self.hasher.hash_one(host);
        let entry = self.by_host.find_entry(hash, |&i| slots[i as usize].host == host).ok()?;
        let (i, _) = entry.remove();
        let owner = std::mem::take(&mut self.slots[i as usize].owner);
        let hash = self.hasher.hash_one(&*owner);
        if let Ok(entry) = self.by_owner.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
        self.vacant.push(i);
        Some(owner)
    }

    /// Every lease, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u128, &str)> {
        self.by_host.iter().map(|&i| {
            let s = &self.slots[i as usize];
            (s.host, &*s.owner)
        })
    }

    /// Bytes held by the table's own structures (slab, vacancy list, both indexes), not
    /// counting the owner strings.
    pub(crate) fn heap_bytes(&self) -> usize {
        let index = |t: &HashTable<u32>| (t.capacity() * 8).div_ceil(7).next_power_of_two() * 5;
        self.slots.capacity() * size_of::<Slot>()
            + self.vacant.capacity() * size_of::<u32>()
            + index(&self.by_host)
            + index(&self.by_owner)
    }
}
