//! The conformance suite of `JobQueue` backends (feature `testkit`): a broker backend's tests
//! call the same checks as the in-process one's.

use kws_core::{DnsLabel, JobId, OwnerId};

use crate::{
    error::QueueError,
    limits::Limits,
    queue::{Enqueued, JobQueue, JobRequest},
};

fn job(language: &DnsLabel) -> JobRequest {
    JobRequest {
        id: JobId::new(),
        user: OwnerId::parse("testkit").expect("a valid owner"),
        language: language.clone(),
        source: "print(1)".to_owned(),
        stdin: String::new(),
        limits: Limits::default(),
    }
}

/// A language name no other caller uses, so a shared backend's other queues are not touched.
fn fresh_language(what: &str) -> DnsLabel {
    let id = JobId::new().to_string();
    DnsLabel::parse(&format!("tk-{what}-{}", &id[id.len() - 12..])).expect("a valid label")
}

/// Checks the `JobQueue` contract on `queue`, whose per-language capacity is `capacity`
/// (at least 2): FIFO, bounded, idempotent ids, at-least-once with acks and nacks. Uses fresh
/// language names; panics on the first broken rule.
pub async fn job_queue_contract(queue: &dyn JobQueue, capacity: usize) {
    assert!(capacity >= 2, "the suite needs a capacity of at least 2");
    let (language, other) = (fresh_language("a"), fresh_language("b"));
    let jobs: Vec<JobRequest> = (0..capacity).map(|_| job(&language)).collect();
    for (position, queued) in jobs.iter().enumerate() {
        let enqueued = queue.enqueue(queued.clone()).await.expect("enqueue");
        assert_eq!(enqueued, Enqueued::Queued { position }, "positions count from 0");
    }
    let duplicate = queue.enqueue(jobs[0].clone()).await.expect("enqueue a duplicate");
    assert_eq!(duplicate, Enqueued::Duplicate, "a queued id is not added twice");
    let full = queue.enqueue(job(&language)).await.expect_err("past capacity");
    assert!(matches!(full, QueueError::Full { capacity: c, .. } if c == capacity), "{full}");
    queue.enqueue(job(&other)).await.expect("another language has its own queue");
    assert_eq!(queue.depth(&language).await.expect("depth"), capacity);

    let first = queue.reserve(&language).await.expect("reserve").expect("a job");
    assert_eq!((first.job.id, first.attempt), (jobs[0].id, 1), "oldest first");
    let in_flight = queue.enqueue(jobs[0].clone()).await.expect("enqueue an outstanding id");
    assert_eq!(in_flight, Enqueued::Duplicate, "an outstanding id is not added twice");
    queue.nack(first.tag, true).await.expect("nack an outstanding delivery");
    let again = queue.reserve(&language).await.expect("reserve").expect("redelivered");
    assert_eq!((again.job.id, again.attempt), (jobs[0].id, 2), "requeued at the head");
    let stale = queue.ack(first.tag).await;
    assert!(matches!(stale, Err(QueueError::UnknownDelivery { .. })), "{stale:?}");
    queue.ack(again.tag).await.expect("ack");
    let twice = queue.ack(again.tag).await;
    assert!(matches!(twice, Err(QueueError::UnknownDelivery { .. })), "{twice:?}");

    let second = queue.reserve(&language).await.expect("reserve").expect("the next job");
    assert_eq!(second.job.id, jobs[1].id, "FIFO");
    queue.nack(second.tag, false).await.expect("drop a delivery");
    let back = queue.enqueue(jobs[1].clone()).await.expect("enqueue a dropped id again");
    assert_eq!(back, Enqueued::Queued { position: capacity - 2 }, "a dropped id may come back");
    while let Some(delivery) = queue.reserve(&language).await.expect("reserve") {
        queue.ack(delivery.tag).await.expect("ack");
    }
    assert_eq!(queue.depth(&language).await.expect("depth"), 0);
    let rest = queue.reserve(&other).await.expect("reserve").expect("the other language's job");
    queue.ack(rest.tag).await.expect("ack");
}
