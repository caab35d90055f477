//! Every host of one pool that was handed out at least once: leased, with its owner, or released
//! and waiting in the free queue. One 32-byte slab slot per host, indexed by host number (every
//! slot) and by owner (leased slots), each index a 4-byte slot number; the free queue holds slot
//! numbers too, so taking a host from it or putting one back touches no host index.
//!
//! The owner is the caller's `LeaseOwner` key itself (a shared `Arc<str>`), kept without a copy
//! and handed back in the `Lease` that `release` returns.

use std::{hash::BuildHasher, sync::Arc, time::Instant};

use hashbrown::{DefaultHashBuilder, HashTable};

use super::free_queue::FreeQueue;

#[derive(Debug)]
enum State {
    /// Leased by this owner.
    Leased(Arc<str>),
    /// Released; the stamp of its latest free-queue entry.
    Queued(u64),
}

#[derive(Debug)]
struct Slot {
    host: u128,
    state: State,
}

// The stamp of `Queued` shares the space of the pointer's length: a slot stays 32 bytes.
const _: () = assert!(size_of::<Slot>() == 32);

/// The hash of an owner key, computed once per operation and reused by the insert that follows
/// the lookup.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnerHash(u64);

/// The leases and the free queue of one pool.
#[derive(Debug, Default)]
pub(crate) struct LeaseTable {
    slots: Vec<Slot>,
    by_host: HashTable<u32>,
    by_owner: HashTable<u32>,
    queue: FreeQueue,
    leased: usize,
    hasher: DefaultHashBuilder,
}

/// True when the free-queue entry stamped `seq` is still the latest of slot `i`.
fn is_current(slots: &[Slot], i: u32, seq: u64) -> bool {
    matches!(slots[i as usize].state, State::Queued(s) if s == seq)
}

fn owner_of(slot: &Slot) -> &str {
    match &slot.state {
        State::Leased(o) => o,
        State::Queued(_) => "",
    }
}

impl LeaseTable {
    /// How many leases are live.
    pub(crate) fn len(&self) -> usize {
        self.leased
    }

    fn slot_of(&self, host: u128) -> Option<u32> {
        let hash = self.hasher.hash_one(host);
        self.by_host.find(hash, |&i| self.slots[i as usize].host == host).copied()
    }

    /// The owner holding `host`.
    pub(crate) fn holder(&self, host: u128) -> Option<&Arc<str>> {
        match &self.slots[self.slot_of(host)? as usize].state {
            State::Leased(o) => Some(o),
            State::Queued(_) => None,
        }
    }

    /// True when `host` is leased or in the free queue.
    pub(crate) fn knows(&self, host: u128) -> bool {
        self.slot_of(host).is_some()
    }

    /// The hash of `owner`, and the host it holds.
    pub(crate) fn held_by(&self, owner: &str) -> (OwnerHash, Option<u128>) {
        let hash = self.hasher.hash_one(owner);
        let slot = self.by_owner.find(hash, |&i| owner_of(&self.slots[i as usize]) == owner);
        (OwnerHash(hash), slot.map(|&i| self.slots[i as usize].host))
    }

    fn index_owner(&mut self, slot: u32, owner: Arc<str>, hash: OwnerHash) {
        self.slots[slot as usize].state = State::Leased(owner);
        self.leased += 1;
        let (slots, hasher) = (&self.slots, &self.hasher);
        let rehash = |&j: &u32| hasher.hash_one(owner_of(&slots[j as usize]));
        self.by_owner.insert_unique(hash.0, slot, rehash);
    }

    /// Leases the oldest queued host whose quarantine has ended to `owner`, whose hash `held_by`
    /// gave and who holds nothing; `now` is asked for only when that host has a quarantine.
    pub(crate) fn lease_queued(
        &mut self,
        owner: &Arc<str>,
        hash: OwnerHash,
        now: impl FnOnce() -> Instant,
    ) -> Option<u128> {
        let slots = &self.slots;
        let current = |i: u32, seq: u64| is_current(slots, i, seq);
        let slot = self.queue.pop_ready(current, now)?;
        self.index_owner(slot, Arc::clone(owner), hash);
        Some(self.slots[slot as usize].host)
    }

    /// Leases `host` to `owner`, whose hash `held_by` gave and who holds nothing. The caller has
    /// checked that `host` is not leased; it may be queued (taken out of order) or unknown.
    pub(crate) fn lease(&mut self, host: u128, owner: Arc<str>, hash: OwnerHash) {
        let slot = match self.slot_of(host) {
            Some(slot) => slot,
            None => {
                // More than u32::MAX hosts would not fit in memory anyway (32 B each).
                let slot = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
                self.slots.push(Slot { host, state: State::Queued(u64::MAX) });
                let (slots, hasher) = (&self.slots, &self.hasher);
                let rehash = |&j: &u32| hasher.hash_one(slots[j as usize].host);
                self.by_host.insert_unique(hasher.hash_one(host), slot, rehash);
                slot
            }
        };
        self.index_owner(slot, owner, hash);
    }

    /// Ends the lease on `host` and queues the host, usable from `ready_at`; returns the owner.
    pub(crate) fn release(&mut self, host: u128, ready_at: Option<Instant>) -> Option<Arc<str>> {
        let slot = self.slot_of(host)?;
        let State::Leased(owner) = &self.slots[slot as usize].state else { return None };
        let hash = self.hasher.hash_one(&**owner);
        if let Ok(entry) = self.by_owner.find_entry(hash, |&j| j == slot) {
            entry.remove();
        }
        let seq = self.queue.push(slot, ready_at);
        let state = std::mem::replace(&mut self.slots[slot as usize].state, State::Queued(seq));
        self.leased -= 1;
        match state {
            State::Leased(owner) => Some(owner),
            State::Queued(_) => None,
        }
    }

    /// Every lease, in no particular order.
    pub(crate) fn leases(&self) -> impl Iterator<Item = (u128, &Arc<str>)> {
        self.by_owner.iter().filter_map(|&i| {
            let s = &self.slots[i as usize];
            match &s.state {
                State::Leased(o) => Some((s.host, o)),
                State::Queued(_) => None,
            }
        })
    }

    /// The queued hosts, oldest first (quarantined ones included).
    pub(crate) fn queued(&self) -> impl Iterator<Item = u128> {
        let slots = &self.slots;
        let current = |i: u32, seq: u64| is_current(slots, i, seq);
        self.queue.iter(current).map(|i| slots[i as usize].host)
    }

    /// Every host leased or queued.
    pub(crate) fn hosts(&self) -> impl Iterator<Item = u128> {
        self.by_host.iter().map(|&i| self.slots[i as usize].host)
    }

    /// Bytes held by the slab and both indexes (not the free queue's order, and not the owner
    /// keys, which are the callers' own).
    pub(crate) fn heap_bytes(&self) -> usize {
        let index = |t: &HashTable<u32>| (t.capacity() * 8).div_ceil(7).next_power_of_two() * 5;
        self.slots.capacity() * size_of::<Slot>() + index(&self.by_host) + index(&self.by_owner)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A host taken out of the queue and released again keeps only its newest entry: the old
    /// one, ready earlier, is skipped, so the host is not handed out before its new quarantine.
    #[test]
    fn a_host_requeued_after_an_out_of_order_take_waits_for_its_new_quarantine() {
        let (t0, mut table) = (Instant::now(), LeaseTable::default());
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let (ha, _) = table.held_by(&a);
        table.lease(7, a.clone(), ha);
        assert!(table.release(7, Some(t0 + Duration::from_secs(1))).is_some());
        let (hb, _) = table.held_by(&b);
        table.lease(7, b.clone(), hb);
        assert_eq!(table.holder(7), Some(&b));
        assert!(table.release(7, Some(t0 + Duration::from_secs(10))).is_some());
        assert_eq!(table.queued().collect::<Vec<_>>(), vec![7]);
        let (ha, _) = table.held_by(&a);
        assert_eq!(table.lease_queued(&a, ha, || t0 + Duration::from_secs(5)), None);
        assert_eq!(table.lease_queued(&a, ha, || t0 + Duration::from_secs(10)), Some(7));
        assert_eq!((table.len(), table.held_by(&a).1), (1, Some(7)));
        assert_eq!(table.leases().count(), 1);
    }
}
