//! Group commit: concurrent operations on one allocator instance share one backend call.
//!
//! A caller queues its item and waits for the outcome of that item alone. While fewer than
//! `max_in_flight` batches are in flight, a call starts a batch at once (a lone caller never
//! waits for a timer or for company); otherwise its item waits in the queue, and the batch that
//! finishes first takes up to `max_items` queued items as its next batch. The batch runs on a
//! task of its own, so a caller that gives up (a dropped future) never strands the others.
//!
//! Compiled into each backend module that uses it (`#[path]`), so each feature builds alone.

use std::{
    collections::VecDeque,
    fmt,
    future::Future,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use tokio::sync::oneshot;

/// Bounds of the coalescing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Items per batch (at least 1).
    pub(crate) max_items: usize,
    /// Batches in flight at once (at least 1).
    pub(crate) max_in_flight: usize,
}

impl Limits {
    /// `max_items` and `max_in_flight`, each at least 1.
    pub(crate) fn new(max_items: usize, max_in_flight: usize) -> Self {
        Self { max_items: max_items.max(1), max_in_flight: max_in_flight.max(1) }
    }
}

/// Runs one batch against the backend.
pub(crate) trait Flush: Send + Sync + 'static {
    /// One operation.
    type Item: Send + 'static;
    /// The outcome of one operation.
    type Out: Send + 'static;
    /// Runs `items` in one backend call; returns one outcome per item, in order.
    fn flush(&self, items: Vec<Self::Item>) -> impl Future<Output = Vec<Self::Out>> + Send;
}

type Waiting<F> = VecDeque<(<F as Flush>::Item, oneshot::Sender<<F as Flush>::Out>)>;

struct Queue<F: Flush> {
    waiting: Waiting<F>,
    in_flight: usize,
}

struct Shared<F: Flush> {
    flusher: F,
    limits: Limits,
    queue: Mutex<Queue<F>>,
    batches: AtomicU64,
    items: AtomicU64,
}

impl<F: Flush> Shared<F> {
    fn lock(&self) -> MutexGuard<'_, Queue<F>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<F: Flush> Queue<F> {
    fn take(&mut self, max: usize) -> Waiting<F> {
        let n = self.waiting.len().min(max);
        self.waiting.drain(..n).collect()
    }
}

/// Coalesces concurrent calls into batches run by `F`.
pub(crate) struct GroupCommit<F: Flush> {
    shared: Arc<Shared<F>>,
}

impl<F: Flush> Clone for GroupCommit<F> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

impl<F: Flush> fmt::Debug for GroupCommit<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupCommit").field("limits", &self.shared.limits).finish_non_exhaustive()
    }
}

impl<F: Flush> GroupCommit<F> {
    pub(crate) fn new(flusher: F, limits: Limits) -> Self {
        let queue = Mutex::new(Queue { waiting: VecDeque::new(), in_flight: 0 });
        let (batches, items) = (AtomicU64::new(0), AtomicU64::new(0));
        Self { shared: Arc::new(Shared { flusher, limits, queue, batches, items }) }
    }

    /// Batches run so far and the items they held.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.shared.batches.load(Relaxed), self.shared.items.load(Relaxed))
    }

    pub(crate) fn limits(&self) -> Limits {
        self.shared.limits
    }

    /// Runs `item` in the next batch; `None` when the batch was lost (its task panicked or the
    /// runtime shut down), in which case the item may or may not have been applied.
    pub(crate) async fn submit(&self, item: F::Item) -> Option<F::Out> {
        let (tx, rx) = oneshot::channel();
        let batch = {
            let mut q = self.shared.lock();
            q.waiting.push_back((item, tx));
            if q.in_flight < self.shared.limits.max_in_flight {
                q.in_flight += 1;
                Some(q.take(self.shared.limits.max_items))
            } else {
                None
            }
        };
        if let Some(batch) = batch {
            tokio::spawn(drive(self.shared.clone(), batch));
        }
        rx.await.ok()
    }
}

/// Gives back the in-flight slot if a batch task unwinds, failing what waits behind it.
struct Slot<F: Flush>(Arc<Shared<F>>);

impl<F: Flush> Drop for Slot<F> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut q = self.0.lock();
            q.in_flight -= 1;
            q.waiting.clear();
        }
    }
}

/// Runs `batch`, then the queued items, until the queue is empty.
async fn drive<F: Flush>(shared: Arc<Shared<F>>, mut batch: Waiting<F>) {
    let slot = Slot(shared);
    loop {
        let (items, senders): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        slot.0.batches.fetch_add(1, Relaxed);
        slot.0.items.fetch_add(items.len() as u64, Relaxed);
        let outs = slot.0.flusher.flush(items).await;
        for (tx, out) in senders.into_iter().zip(outs) {
            // A caller that stopped waiting does not matter to the others.
            let _ = tx.send(out);
        }
        let mut q = slot.0.lock();
        if q.waiting.is_empty() {
            q.in_flight -= 1;
            return;
        }
        batch = q.take(slot.0.limits.max_items);
    }
}
