//! The released hosts of one pool, oldest first, each resting until its quarantine ends.

use std::{collections::VecDeque, time::Instant};

#[derive(Debug)]
struct Queued {
    slot: u32,
    seq: u64,
    ready_at: Option<Instant>,
}

/// A FIFO of slab slots (see `LeaseTable`), each entry stamped with a sequence number. The slot
/// keeps the stamp of its latest entry, so an entry whose slot was leased out of order (by
/// `allocate_specific`), and maybe released again since, no longer matches and is skipped when
/// it reaches the front: every operation is O(1) amortised and none searches the queue.
#[derive(Debug, Default)]
pub(crate) struct FreeQueue {
    order: VecDeque<Queued>,
    next_seq: u64,
}

impl FreeQueue {
    /// Queues `slot`, usable from `ready_at` (at once when `None`); returns the entry's stamp.
    pub(crate) fn push(&mut self, slot: u32, ready_at: Option<Instant>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.push_back(Queued { slot, seq, ready_at });
        seq
    }

    /// Takes the oldest current entry whose quarantine has ended. `current(slot, seq)` tells
    /// whether an entry is still its slot's latest; `now` is asked for only when the front
    /// entry has a quarantine.
    pub(crate) fn pop_ready(
        &mut self,
        current: impl Fn(u32, u64) -> bool,
        now: impl FnOnce() -> Instant,
    ) -> Option<u32> {
        let mut now = Some(now);
        let mut at: Option<Instant> = None;
        while let Some(front) = self.order.front() {
            if !current(front.slot, front.seq) {
                self.order.pop_front();
                continue;
            }
            if let Some(ready) = front.ready_at {
                let t = *at.get_or_insert_with(|| now.take().map_or_else(Instant::now, |f| f()));
                if ready > t {
                    return None;
                }
            }
            let slot = front.slot;
            self.order.pop_front();
            return Some(slot);
        }
        None
    }

    /// The current entries' slots, oldest first.
    pub(crate) fn iter(&self, current: impl Fn(u32, u64) -> bool) -> impl Iterator<Item = u32> {
        self.order.iter().filter(move |q| current(q.slot, q.seq)).map(|q| q.slot)
    }
}
