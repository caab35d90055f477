//! Every job's events: appended in order, replayed to late subscribers, then followed live;
//! a finished job's events are kept for the retention period.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use futures::Stream;
use kws_core::{JobId, OwnerId};
use tokio::sync::watch;

use crate::event::JobEvent;

/// One job's events and the count that wakes its subscribers.
#[derive(Debug)]
struct JobLog {
    owner: OwnerId,
    events: Mutex<Vec<JobEvent>>,
    count: watch::Sender<usize>,
}

impl JobLog {
    fn events(&self) -> MutexGuard<'_, Vec<JobEvent>> {
        self.events.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The events of all jobs of an engine.
///
/// # Contract
/// - Events of a job are kept in the order `push` was called; nothing is appended after a
///   terminal event (such pushes are ignored and reported as `false`).
/// - A subscriber sees every event from the first, then live ones, then the stream ends after
///   the terminal event. Subscribers never miss or reorder events, however late they come.
/// - A finished job stays for `retention` after its terminal event, then is forgotten (lazily,
///   on the next call that touches the journal).
pub(crate) struct Journal {
    jobs: Mutex<Jobs>,
    retention: Duration,
}

#[derive(Default)]
struct Jobs {
    logs: HashMap<JobId, Arc<JobLog>>,
    /// Finished jobs in the order they finished, with when to forget them.
    expiry: VecDeque<(Instant, JobId)>,
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal").field("retention", &self.retention).finish_non_exhaustive()
    }
}

/// A finished or running job's events so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSnapshot {
    /// Who submitted the job.
    pub owner: OwnerId,
    /// The events so far, in order.
    pub events: Vec<JobEvent>,
}

impl JobSnapshot {
    /// The terminal event, once the job has ended.
    pub fn outcome(&self) -> Option<&JobEvent> {
        self.events.last().filter(|e| e.is_terminal())
    }

    /// All standard output, concatenated.
    pub fn stdout(&self) -> Vec<u8> {
        self.output(false)
    }

    /// All standard error, concatenated.
    pub fn stderr(&self) -> Vec<u8> {
        self.output(true)
    }

    fn output(&self, stderr: bool) -> Vec<u8> {
        let chunks = self.events.iter().filter_map(|e| match (e, stderr) {
            (JobEvent::Stdout(b), false) | (JobEvent::Stderr(b), true) => Some(b.as_slice()),
            _ => None,
        });
        chunks.flatten().copied().collect()
    }
}

/// A job's events: the history, then live ones; ends after the terminal event.
pub type JobEvents = Pin<Box<dyn Stream<Item = JobEvent> + Send>>;

impl Journal {
    pub(crate) fn new(retention: Duration) -> Self {
        Self { jobs: Mutex::new(Jobs::default()), retention }
    }

    fn jobs(&self) -> MutexGuard<'_, Jobs> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        while jobs.expiry.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, id)) = jobs.expiry.pop_front() {
                jobs.logs.remove(&id);
            }
        }
        jobs
    }

    /// Starts a job's log with its first event. Returns `false` (and changes nothing) when the
    /// id is already known.
    pub(crate) fn create(&self, id: JobId, owner: OwnerId, first: JobEvent) -> bool {
        let mut jobs = self.jobs();
        if jobs.logs.contains_key(&id) {
            return false;
        }
        let (count, _) = watch::channel(1);
        let log = JobLog { owner, events: Mutex::new(vec![first]), count };
        jobs.logs.insert(id, Arc::new(log));
        true
    }

    /// Appends an event; `false` when the job is unknown or already ended.
    pub(crate) fn push(&self, id: JobId, event: JobEvent) -> bool {
        let Some(log) = self.jobs().logs.get(&id).cloned() else { return false };
        let terminal = event.is_terminal();
        let count = {
            let mut events = log.events();
            if events.last().is_some_and(JobEvent::is_terminal) {
                return false;
            }
            events.push(event);
            events.len()
        };
        log.count.send_replace(count);
        if terminal {
            let expires = Instant::now() + self.retention;
            self.jobs().expiry.push_back((expires, id));
        }
        true
    }

    /// Whether the job has ended (or is unknown).
    pub(crate) fn is_finished(&self, id: JobId) -> bool {
        self.snapshot(id).is_none_or(|s| s.outcome().is_some())
    }

    /// The job's events so far.
    pub(crate) fn snapshot(&self, id: JobId) -> Option<JobSnapshot> {
        let log = self.jobs().logs.get(&id).cloned()?;
        let events = log.events().clone();
        Some(JobSnapshot { owner: log.owner.clone(), events })
    }

    /// The job's events from the first, then live ones, ending after the terminal event.
    pub(crate) fn subscribe(&self, id: JobId) -> Option<JobEvents> {
        let log = self.jobs().logs.get(&id).cloned()?;
        let count = log.count.subscribe();
        let stream = futures::stream::unfold((log, count, 0usize), |(log, mut count, next)| {
            async move {
                loop {
                    let event = {
                        let events = log.events();
                        if next > 0 && events.get(next - 1).is_some_and(JobEvent::is_terminal) {
                            return None;
                        }
                        events.get(next).cloned()
                    };
                    if let Some(event) = event {
                        return Some((event, (log, count, next + 1)));
                    }
                    // The sender lives in `log`, which this stream holds: `changed` only
                    // returns once a new event is there.
                    count.changed().await.ok()?;
                }
            }
        });
        Some(Box::pin(stream))
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn owner() -> OwnerId {
        OwnerId::parse("alice").expect("valid")
    }

    #[tokio::test]
    async fn late_subscribers_get_history_then_live_events_then_the_end() {
        let journal = Arc::new(Journal::new(Duration::from_secs(60)));
        let id = JobId::new();
        assert!(journal.create(id, owner(), JobEvent::Queued { position: 0 }));
        assert!(!journal.create(id, owner(), JobEvent::Queued { position: 9 }));
        journal.push(id, JobEvent::Started);
        let mut early = journal.subscribe(id).expect("known");
        assert_eq!(early.next().await, Some(JobEvent::Queued { position: 0 }));
        assert_eq!(early.next().await, Some(JobEvent::Started));
        let writer = {
            let journal = journal.clone();
            tokio::spawn(async move {
                for i in 0..100u8 {
                    journal.push(id, JobEvent::Stdout(vec![i]));
                    tokio::task::yield_now().await;
                }
                journal.push(id, JobEvent::Exited { code: 0, wall_ms: 1 });
            })
        };
        let mut seen = Vec::new();
        while let Some(event) = early.next().await {
            seen.push(event);
        }
        writer.await.expect("writer");
        assert_eq!(seen.len(), 101);
        assert!(
            seen.iter()
                .take(100)
                .enumerate()
                .all(|(i, e)| *e == JobEvent::Stdout(vec![u8::try_from(i).expect("small")]))
        );
        assert!(!journal.push(id, JobEvent::Stdout(b"after the end".to_vec())));
        let late: Vec<_> = journal.subscribe(id).expect("retained").collect().await;
        assert_eq!(late.len(), 103);
        assert_eq!(late.last(), Some(&JobEvent::Exited { code: 0, wall_ms: 1 }));
        assert!(journal.is_finished(id));
    }

    #[tokio::test]
    async fn finished_jobs_are_forgotten_after_retention() {
        let journal = Journal::new(Duration::from_millis(50));
        let done = JobId::new();
        let running = JobId::new();
        journal.create(done, owner(), JobEvent::Queued { position: 0 });
        journal.create(running, owner(), JobEvent::Queued { position: 1 });
        journal.push(done, JobEvent::TimedOut);
        assert!(journal.snapshot(done).is_some());
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(journal.snapshot(done).is_none());
        assert!(journal.subscribe(done).is_none());
        assert!(journal.snapshot(running).is_some(), "running jobs are kept");
    }
}
