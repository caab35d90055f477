//! The tenant-tagged event stream: operation progress, instance status changes, device
//! handshakes and job lifecycle, numbered in one sequence and kept in a replay window, so a
//! front end that drops can resume from the last number it saw.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll},
};

use chrono::{DateTime, Utc};
use futures::Stream;
use kws_core::OwnerId;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};
use uuid::Uuid;

use crate::platform::{
    Scope,
    store::{Kind, OpState},
};

/// One event.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformEvent {
    /// Its number: strictly increasing over every event of this Platform.
    pub seq: u64,
    /// The tenant it belongs to; only that tenant's scopes (and the operator) receive it.
    pub tenant: OwnerId,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub body: EventBody,
    /// The event as JSON, made once on first use and shared by every subscriber (a fan-out to
    /// a thousand streams serializes it once, not a thousand times).
    #[serde(skip)]
    json: std::sync::OnceLock<String>,
}

/// Equal when the events are: the cached JSON does not count.
impl PartialEq for PlatformEvent {
    fn eq(&self, other: &Self) -> bool {
        (self.seq, &self.tenant, self.at, &self.body)
            == (other.seq, &other.tenant, other.at, &other.body)
    }
}

impl PlatformEvent {
    /// An event numbered `seq` of `tenant`, at `at`.
    pub fn new(seq: u64, tenant: OwnerId, at: DateTime<Utc>, body: EventBody) -> Self {
        Self { seq, tenant, at, body, json: std::sync::OnceLock::new() }
    }

    /// The event as JSON (its fields, `body` flattened with its `type`), serialized once.
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| serde_json::to_string(self).unwrap_or_else(|_| "null".into()))
    }

    /// The name of the body's kind, as its `type` field spells it.
    pub fn kind(&self) -> &'static str {
        match self.body {
            EventBody::Operation { .. } => "operation",
            EventBody::Object { .. } => "object",
            EventBody::Device { .. } => "device",
            EventBody::Job { .. } => "job",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventBody {
    /// An operation changed state or finished a step.
    Operation {
        /// The operation.
        id: Uuid,
        /// What it does.
        kind: String,
        /// What it acts on.
        target: String,
        /// Its state now.
        state: OpState,
        /// The step it just finished or undid, if any.
        step: Option<String>,
    },
    /// An object was created, changed or deleted.
    Object {
        /// Its kind.
        kind: Kind,
        /// Its name.
        name: String,
        /// `created`, `updated`, `status` or `deleted`.
        change: &'static str,
    },
    /// A device's handshake or counters changed.
    Device {
        /// The device.
        name: String,
        /// Its last handshake.
        last_handshake: Option<DateTime<Utc>>,
        /// Bytes received from it.
        rx_bytes: u64,
        /// Bytes sent to it.
        tx_bytes: u64,
    },
    /// A job changed state.
    Job {
        /// The job.
        id: String,
        /// `queued`, `started` or how it ended (`exited`, `timed_out`, ...).
        state: String,
        /// Its exit code, once it exited.
        exit_code: Option<i64>,
    },
}

/// Something a subscriber could not get.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamGap {
    /// Events after `after` left the replay window before the subscriber read them; it
    /// continues with the oldest kept (`resumed_at`). Reload the state to be sure of it.
    #[error("events after {after} are no longer kept; resumed at {resumed_at}")]
    Missed {
        /// The last event the subscriber had.
        after: u64,
        /// The first one it gets next.
        resumed_at: u64,
    },
}

/// The bus: publish, subscribe, replay. Clones share one bus.
#[derive(Debug, Clone)]
pub struct EventBus {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<PlatformEvent>>,
}

#[derive(Debug)]
struct Ring {
    events: VecDeque<Arc<PlatformEvent>>,
    capacity: usize,
    next: u64,
}

impl EventBus {
    /// A bus that keeps the last `window` events for replay.
    pub fn new(window: usize) -> Self {
        let capacity = window.max(1);
        let (live, _) = broadcast::channel(capacity.min(16_384));
        let ring = Mutex::new(Ring { events: VecDeque::new(), capacity, next: 1 });
        Self { shared: Arc::new(Shared { ring, live }) }
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.shared.ring()
    }

    /// Publishes an event of `tenant` and returns its number.
    pub fn publish(&self, tenant: &OwnerId, body: EventBody) -> u64 {
        let mut ring = self.ring();
        let seq = ring.next;
        ring.next += 1;
        let event = Arc::new(PlatformEvent::new(seq, tenant.clone(), Utc::now(), body));
        if ring.events.len() == ring.capacity {
            ring.events.pop_front();
        }
        ring.events.push_back(event.clone());
        // Sent under the lock, so live events arrive in `seq` order and none is missed between
        // a subscriber's replay and its live part.
        let _ = self.shared.live.send(event);
        seq
    }

    /// The number of the newest event (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.ring().next - 1
    }

    /// The events `scope` sees with a number above `after` (from the newest on when `None`),
    /// then live ones. The stream yields a [`StreamGap`] where events were lost to it.
    pub fn subscribe(&self, scope: Scope, after: Option<u64>) -> Subscription {
        let ring = self.ring();
        let live = BroadcastStream::new(self.shared.live.subscribe());
        let after = after.unwrap_or(ring.next - 1);
        let mut sub = Subscription {
            shared: self.shared.clone(),
            scope,
            last: after,
            backlog: VecDeque::new(),
            live,
            gap: None,
        };
        sub.refill(&ring);
        drop(ring);
        sub
    }
}

impl Shared {
    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A subscriber's stream of events (see [`EventBus::subscribe`]).
#[derive(Debug)]
pub struct Subscription {
    shared: Arc<Shared>,
    scope: Scope,
    /// The number of the last event delivered (or skipped as not the scope's).
    last: u64,
    backlog: VecDeque<Arc<PlatformEvent>>,
    live: BroadcastStream<Arc<PlatformEvent>>,
    gap: Option<StreamGap>,
}

impl Subscription {
    /// Queues the kept events after `last`, noting a gap when some are no longer kept.
    fn refill(&mut self, ring: &Ring) {
        let oldest = ring.events.front().map_or(ring.next, |e| e.seq);
        if self.last + 1 < oldest && self.last < ring.next - 1 {
            self.gap = Some(StreamGap::Missed { after: self.last, resumed_at: oldest });
            self.last = oldest - 1;
        }
        let start = ring.events.partition_point(|e| e.seq <= self.last);
        self.backlog.extend(ring.events.range(start..).cloned());
    }

    /// Waits for the next event (`None` when the bus is gone).
    pub async fn next_event(&mut self) -> Option<Result<Arc<PlatformEvent>, StreamGap>> {
        futures::StreamExt::next(self).await
    }

    /// Takes the next event the scope sees, from the backlog, without waiting.
    fn take_backlog(&mut self) -> Option<Arc<PlatformEvent>> {
        while let Some(event) = self.backlog.pop_front() {
            if event.seq <= self.last {
                continue;
            }
            self.last = event.seq;
            if self.scope.sees(&event.tenant) {
                return Some(event);
            }
        }
        None
    }
}

impl Stream for Subscription {
    type Item = Result<Arc<PlatformEvent>, StreamGap>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(gap) = this.gap.take() {
            return Poll::Ready(Some(Err(gap)));
        }
        if let Some(event) = this.take_backlog() {
            return Poll::Ready(Some(Ok(event)));
        }
        loop {
            match Pin::new(&mut this.live).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Ok(event))) => {
                    this.backlog.push_back(event);
                    if let Some(event) = this.take_backlog() {
                        return Poll::Ready(Some(Ok(event)));
                    }
                }
                // Lagged: what the channel dropped is still in the ring (unless it left the
                // window too, which `refill` reports as a gap).
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(_)))) => {
                    let shared = this.shared.clone();
                    this.refill(&shared.ring());
                    if let Some(gap) = this.gap.take() {
                        return Poll::Ready(Some(Err(gap)));
                    }
                    if let Some(event) = this.take_backlog() {
                        return Poll::Ready(Some(Ok(event)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;
    use crate::platform::Role;

    fn owner(s: &str) -> OwnerId {
        OwnerId::parse(s).expect("owner")
    }

    fn object(name: &str) -> EventBody {
        EventBody::Object { kind: Kind::Instance, name: name.to_owned(), change: "created" }
    }

    async fn take(sub: &mut Subscription, n: usize) -> Vec<Result<u64, StreamGap>> {
        let mut out = Vec::new();
        for _ in 0..n {
            let next = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next()).await;
            out.push(next.expect("an event").expect("open").map(|e| e.seq));
        }
        out
    }

    #[tokio::test]
    async fn a_tenant_sees_only_its_events_and_resumes_without_loss_or_repeat() {
        let bus = EventBus::new(100);
        let (alice, bob) = (owner("alice"), owner("bob"));
        let scope = Scope::tenant(alice.clone(), Role::Viewer);
        let mut sub = bus.subscribe(scope.clone(), Some(0));
        bus.publish(&alice, object("a1"));
        bus.publish(&bob, object("b1"));
        bus.publish(&alice, object("a2"));
        assert_eq!(take(&mut sub, 2).await, vec![Ok(1), Ok(3)]);
        // Dropped after 1, reconnects with Last-Event-ID 1: gets 3 once, then live ones.
        let mut again = bus.subscribe(scope, Some(1));
        bus.publish(&alice, object("a3"));
        assert_eq!(take(&mut again, 2).await, vec![Ok(3), Ok(4)]);
        let mut operator = bus.subscribe(Scope::Operator, Some(0));
        assert_eq!(take(&mut operator, 4).await, vec![Ok(1), Ok(2), Ok(3), Ok(4)]);
    }

    #[tokio::test]
    async fn a_resume_older_than_the_window_says_so() {
        let bus = EventBus::new(3);
        let alice = owner("alice");
        for i in 0..6 {
            bus.publish(&alice, object(&format!("i{i}")));
        }
        let mut sub = bus.subscribe(Scope::Operator, Some(1));
        let got = take(&mut sub, 4).await;
        assert_eq!(got[0], Err(StreamGap::Missed { after: 1, resumed_at: 4 }));
        assert_eq!(&got[1..], &[Ok(4), Ok(5), Ok(6)]);
        let mut fresh = bus.subscribe(Scope::Operator, None);
        bus.publish(&alice, object("new"));
        assert_eq!(take(&mut fresh, 1).await, vec![Ok(7)], "None starts after the newest");
    }
}
