//! Released addresses of one pool, oldest first, each resting until its quarantine ends.

use std::{collections::VecDeque, time::Instant};

use hashbrown::HashMap;

#[derive(Debug)]
struct Queued {
    host: u128,
    seq: u64,
    ready_at: Option<Instant>,
}

/// A FIFO of released host numbers. Entries taken out of order (by `allocate_specific`) are
/// dropped from the membership map and skipped lazily when they reach the front, so every
/// operation is O(1) amortised.
#[derive(Debug, Default)]
pub(crate) struct FreeQueue {
    order: VecDeque<Queued>,
    members: HashMap<u128, u64>,
    next_seq: u64,
}

impl FreeQueue {
    /// True when `host` is queued.
    pub(crate) fn contains(&self, host: u128) -> bool {
        self.members.contains_key(&host)
    }

    /// Queues `host`, usable from `ready_at` (at once when `None`).
    pub(crate) fn push(&mut self, host: u128, ready_at: Option<Instant>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.members.insert(host, seq);
        self.order.push_back(Queued { host, seq, ready_at });
    }

    /// Takes the oldest queued host whose quarantine has ended; `now` is asked for only when
    /// the front entry has a quarantine.
    pub(crate) fn pop_ready(&mut self, now: impl FnOnce() -> Instant) -> Option<u128> {
        let mut now = Some(now);
        let mut at: Option<Instant> = None;
        while let Some(front) = self.order.front() {
            if self.members.get(&front.host) != Some(&front.seq) {
                self.order.pop_front();
                continue;
            }
            if let Some(ready) = front.ready_at {
                let t = *at.get_or_insert_with(|| now.take().map_or_else(Instant::now, |f| f()));
                if ready > t {
                    return None;
                }
            }
            let host = front.host;
            self.order.pop_front();
            self.members.remove(&host);
            return Some(host);
        }
        None
    }

    /// Removes `host` from the queue (when `allocate_specific` takes it).
    pub(crate) fn remove(&mut self, host: u128) -> bool {
        self.members.remove(&host).is_some()
    }

    /// The queued hosts, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u128> {
        self.order.iter().filter(|q| self.members.get(&q.host) == Some(&q.seq)).map(|q| q.host)
    }
}
