//! The job queue between `submit` and the workers: one bounded FIFO per language.
//!
//! The in-process backend serves one engine; the trait is shaped for a broker (RabbitMQ) that
//! feeds workers on several machines: deliveries carry a tag and must be acked, a delivery that
//! is nacked (or whose worker dies) is delivered again, and job ids make both enqueueing and
//! running idempotent.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    fmt,
    sync::{Mutex, MutexGuard},
};

use async_trait::async_trait;
use kws_core::{DnsLabel, JobId, OwnerId};

use crate::{error::QueueError, limits::Limits};

/// A job as it travels through the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRequest {
    /// The job's id; the queue's idempotency key.
    pub id: JobId,
    /// Who submitted it.
    pub user: OwnerId,
    /// Its language.
    pub language: DnsLabel,
    /// The program.
    pub source: String,
    /// What the program reads on standard input.
    pub stdin: String,
    /// Its limits.
    pub limits: Limits,
}

/// What `enqueue` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Added behind `position` jobs of the same language.
    Queued {
        /// Jobs ahead of it.
        position: usize,
    },
    /// A job with this id is already queued or being worked on; nothing was added.
    Duplicate,
}

/// One handing-out of a job to a worker, to be acked or nacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Identifies this delivery for `ack`/`nack`.
    pub tag: u64,
    /// How many times the job has been delivered, this one included.
    pub attempt: u32,
    /// The job.
    pub job: JobRequest,
}

/// A queue of jobs per language.
///
/// # Contract
/// - FIFO per language: `reserve` hands out the oldest queued job of that language.
/// - Bounded: `enqueue` fails with `QueueError::Full` when the language's queue holds its
///   capacity; nothing is added then.
/// - Idempotent ids: enqueueing an id that is queued or delivered-but-unacked returns
///   `Enqueued::Duplicate` and adds nothing.
/// - At-least-once: a delivered job stays outstanding until `ack`; `nack(requeue = true)` (or,
///   in a broker, the worker's death) puts it back at the head of its queue with `attempt + 1`.
///   A worker must therefore treat a job id that already ran as done (ack it, run nothing).
/// - `ack`/`nack` of a tag that is not outstanding is `QueueError::UnknownDelivery`.
#[async_trait]
pub trait JobQueue: Send + Sync + fmt::Debug + 'static {
    /// Adds a job at the tail of its language's queue.
    async fn enqueue(&self, job: JobRequest) -> Result<Enqueued, QueueError>;
    /// Hands out the oldest job of `language`, if any.
    async fn reserve(&self, language: &DnsLabel) -> Result<Option<Delivery>, QueueError>;
    /// Confirms a delivery's job is done; it will not be delivered again.
    async fn ack(&self, tag: u64) -> Result<(), QueueError>;
    /// Gives a delivery back: requeued at the head, or dropped when `requeue` is false.
    async fn nack(&self, tag: u64, requeue: bool) -> Result<(), QueueError>;
    /// Jobs of `language` waiting (not delivered).
    async fn depth(&self, language: &DnsLabel) -> Result<usize, QueueError>;
}

/// The in-process backend: per-language `VecDeque`s with a capacity each.
#[derive(Debug)]
pub struct MemoryJobQueue {
    capacity: usize,
    state: Mutex<QueueState>,
}

#[derive(Debug, Default)]
struct QueueState {
    queues: HashMap<DnsLabel, VecDeque<(u32, JobRequest)>>,
    outstanding: HashMap<u64, (u32, JobRequest)>,
    known: HashSet<JobId>,
    next_tag: u64,
}

impl MemoryJobQueue {
    /// A queue holding at most `capacity` waiting jobs per language.
    pub fn new(capacity: usize) -> Self {
        Self { capacity, state: Mutex::new(QueueState::default()) }
    }

    fn state(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl JobQueue for MemoryJobQueue {
    async fn enqueue(&self, job: JobRequest) -> Result<Enqueued, QueueError> {
        let mut state = self.state();
        if state.known.contains(&job.id) {
            return Ok(Enqueued::Duplicate);
        }
        let capacity = self.capacity;
        let queue = state.queues.entry(job.language.clone()).or_default();
        if queue.len() >= capacity {
            return Err(QueueError::Full { language: job.language, capacity });
        }
        let position = queue.len();
        let id = job.id;
        queue.push_back((0, job));
        state.known.insert(id);
        Ok(Enqueued::Queued { position })
    }

    async fn reserve(&self, language: &DnsLabel) -> Result<Option<Delivery>, QueueError> {
        let mut state = self.state();
        let Some((attempts, job)) = state.queues.get_mut(language).and_then(VecDeque::pop_front)
        else {
            return Ok(None);
        };
        state.next_tag += 1;
        let tag = state.next_tag;
        let attempt = attempts + 1;
        state.outstanding.insert(tag, (attempt, job.clone()));
        Ok(Some(Delivery { tag, attempt, job }))
    }

    async fn ack(&self, tag: u64) -> Result<(), QueueError> {
        let mut state = self.state();
        let (_, job) = state.outstanding.remove(&tag).ok_or_else(|| unknown(tag))?;
        state.known.remove(&job.id);
        Ok(())
    }

    async fn nack(&self, tag: u64, requeue: bool) -> Result<(), QueueError> {
        let mut state = self.state();
        let (attempt, job) = state.outstanding.remove(&tag).ok_or_else(|| unknown(tag))?;
        if requeue {
            state.queues.entry(job.language.clone()).or_default().push_front((attempt, job));
        } else {
            state.known.remove(&job.id);
        }
        Ok(())
    }

    async fn depth(&self, language: &DnsLabel) -> Result<usize, QueueError> {
        Ok(self.state().queues.get(language).map_or(0, VecDeque::len))
    }
}

/// The error for a tag that is not outstanding.
fn unknown(tag: u64) -> QueueError {
    QueueError::UnknownDelivery { tag }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn the_memory_queue_meets_the_contract_directly_and_as_a_trait_object() {
        crate::testkit::job_queue_contract(&MemoryJobQueue::new(2), 2).await;
        let shared: Arc<dyn JobQueue> = Arc::new(MemoryJobQueue::new(3));
        crate::testkit::job_queue_contract(shared.as_ref(), 3).await;
    }
}
