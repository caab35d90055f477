//! The scheduler: one task that owns the pools and hands queued jobs to free sandboxes. It
//! wakes only on messages (a submission, a sandbox back, made or retired, a job done): there is
//! no polling loop.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use kws_core::DnsLabel;
use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    engine::Shared,
    error::{QueueError, SubmitError},
    event::JobEvent,
    pool::PoolStatus,
    queue::{Enqueued, JobRequest},
    sandbox::Sandbox,
};

/// What wakes the scheduler.
#[derive(Debug)]
pub(crate) enum Message {
    Submit {
        job: JobRequest,
        reply: oneshot::Sender<Result<(), SubmitError>>,
    },
    Returned(Sandbox),
    Retired(DnsLabel),
    Created {
        language: DnsLabel,
        made: Result<Sandbox, String>,
    },
    Refill(DnsLabel),
    /// A supervisor's channel ended by itself (the sandbox id): retire it if it is waiting.
    Lost {
        language: DnsLabel,
        id: String,
        why: String,
    },
    JobDone,
    Close {
        reply: oneshot::Sender<()>,
    },
}

#[derive(Debug, Default)]
struct Pool {
    ready: VecDeque<Sandbox>,
    status: PoolStatus,
}

/// Waits before making a container again after a failure.
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub(crate) struct Scheduler {
    shared: Arc<Shared>,
    inbox: mpsc::UnboundedReceiver<Message>,
    outbox: mpsc::WeakUnboundedSender<Message>,
    pools: BTreeMap<DnsLabel, Pool>,
    status: watch::Sender<BTreeMap<DnsLabel, PoolStatus>>,
    running: usize,
    closed: bool,
}

impl Scheduler {
    /// Starts the scheduler task; it asks for every pool's containers at once.
    pub(crate) fn start(
        shared: Arc<Shared>,
        status: watch::Sender<BTreeMap<DnsLabel, PoolStatus>>,
    ) -> mpsc::UnboundedSender<Message> {
        let (outbox, inbox) = mpsc::unbounded_channel();
        let target = shared.config.pool_size;
        let pools = shared
            .config
            .languages
            .iter()
            .map(|l| {
                let status = PoolStatus { target, ..PoolStatus::default() };
                (l.name.clone(), Pool { ready: VecDeque::new(), status })
            })
            .collect();
        for language in shared.config.languages.iter() {
            for _ in 0..target {
                let _ = outbox.send(Message::Refill(language.name.clone()));
            }
        }
        let scheduler = Self {
            shared,
            inbox,
            outbox: outbox.downgrade(),
            pools,
            status,
            running: 0,
            closed: false,
        };
        tokio::spawn(scheduler.serve());
        outbox
    }

    async fn serve(mut self) {
        while let Some(message) = self.inbox.recv().await {
            self.handle(message).await;
            if !self.closed {
                self.dispatch().await;
            }
            let status = self.pools.iter().map(|(k, p)| (k.clone(), p.status.clone())).collect();
            self.status.send_replace(status);
        }
    }

    async fn handle(&mut self, message: Message) {
        match message {
            Message::Submit { job, reply } => {
                let _ = reply.send(self.admit(job).await);
            }
            Message::Returned(sandbox) => {
                let closed = self.closed;
                if let Some(pool) = self.pools.get_mut(&sandbox.language) {
                    pool.status.busy -= 1;
                    pool.status.reused += 1;
                    if closed {
                        self.retire_later(sandbox);
                    } else {
                        pool.status.ready += 1;
                        pool.ready.push_back(sandbox);
                    }
                }
            }
            Message::Retired(language) => {
                if let Some(pool) = self.pools.get_mut(&language) {
                    pool.status.busy -= 1;
                    pool.status.retired += 1;
                }
                self.refill(language);
            }
            Message::Created { language, made } => {
                let closed = self.closed;
                let Some(pool) = self.pools.get_mut(&language) else { return };
                pool.status.starting -= 1;
                match made {
                    Ok(sandbox) if closed => self.retire_later(sandbox),
                    Ok(sandbox) => {
                        pool.status.ready += 1;
                        pool.status.last_error = None;
                        pool.ready.push_back(sandbox);
                    }
                    Err(error) => {
                        tracing::warn!(%language, "making an exec sandbox failed: {error}");
                        pool.status.last_error = Some(error.clone());
                        let empty = pool.status.ready + pool.status.busy == 0;
                        if empty {
                            self.fail_queued(&language, &error).await;
                        }
                        if let Some(outbox) = self.outbox.upgrade() {
                            tokio::spawn(async move {
                                tokio::time::sleep(RETRY_AFTER).await;
                                let _ = outbox.send(Message::Refill(language));
                            });
                        }
                    }
                }
            }
            Message::Refill(language) => self.refill(language),
            Message::Lost { language, id, why } => {
                let Some(pool) = self.pools.get_mut(&language) else { return };
                // A busy sandbox's worker sees the same end and retires it itself.
                let Some(at) = pool.ready.iter().position(|s| s.id == id) else { return };
                let Some(sandbox) = pool.ready.remove(at) else { return };
                tracing::warn!(container = %id, "an idle exec sandbox was lost: {why}");
                pool.status.ready -= 1;
                pool.status.retired += 1;
                self.retire_later(sandbox);
                self.refill(language);
            }
            Message::JobDone => self.running -= 1,
            Message::Close { reply } => {
                self.closed = true;
                let languages: Vec<_> = self.pools.keys().cloned().collect();
                for language in languages {
                    self.fail_queued(&language, "the exec engine shut down").await;
                    let ready: Vec<_> = self
                        .pools
                        .get_mut(&language)
                        .map(|p| {
                            p.status.ready = 0;
                            p.ready.drain(..).collect()
                        })
                        .unwrap_or_default();
                    for sandbox in ready {
                        self.retire_later(sandbox);
                    }
                }
                let _ = reply.send(());
            }
        }
    }

    /// Queues a job and records its `Queued` event; only this task reserves jobs, so the event
    /// is in the journal before any worker can push `Started`.
    async fn admit(&mut self, job: JobRequest) -> Result<(), SubmitError> {
        if self.closed {
            return Err(SubmitError::ShutDown);
        }
        let (id, user, language) = (job.id, job.user.clone(), job.language.clone());
        match self.shared.queue.enqueue(job).await {
            Ok(Enqueued::Queued { position }) => {
                self.shared.journal.create(id, user, JobEvent::Queued { position });
                if let Some(pool) = self.pools.get_mut(&language) {
                    pool.status.queued += 1;
                }
                Ok(())
            }
            Ok(Enqueued::Duplicate) => Ok(()),
            Err(QueueError::Full { language, capacity }) => {
                Err(SubmitError::Busy { language, capacity })
            }
            Err(err) => Err(err.into()),
        }
    }

    fn refill(&mut self, language: DnsLabel) {
        if self.closed {
            return;
        }
        let Some(pool) = self.pools.get_mut(&language) else { return };
        if pool.status.ready + pool.status.busy + pool.status.starting >= pool.status.target {
            return;
        }
        pool.status.starting += 1;
        let (shared, outbox) = (self.shared.clone(), self.outbox.upgrade());
        tokio::spawn(async move {
            let lost = Self::on_lost(outbox.as_ref(), &language);
            let made = match shared.config.languages.get(&language) {
                Some(config) => shared.sandboxes.create(config, lost).await,
                None => Err(format!("unknown language {language}")),
            };
            if let Some(outbox) = outbox {
                let _ = outbox.send(Message::Created { language, made });
            }
        });
    }

    /// What a new sandbox's supervisor channel calls when it ends by itself: a `Lost` message
    /// naming the sandbox (its id is known only once Docker made it, so it is sent along).
    fn on_lost(
        outbox: Option<&mpsc::UnboundedSender<Message>>,
        language: &DnsLabel,
    ) -> crate::supervised::Lost {
        let outbox = outbox.map(mpsc::UnboundedSender::downgrade);
        let language = language.clone();
        Box::new(move |id, why| {
            if let Some(outbox) = outbox.and_then(|o| o.upgrade()) {
                let _ = outbox.send(Message::Lost { language, id, why });
            }
        })
    }

    fn retire_later(&self, mut sandbox: Sandbox) {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            shared.sandboxes.retire(&mut sandbox).await;
            if let Some(watch) = &shared.watch {
                watch.forget_container(&sandbox.id);
            }
        });
    }

    /// Ends every queued job of `language` with `Failed`.
    async fn fail_queued(&mut self, language: &DnsLabel, error: &str) {
        while let Ok(Some(delivery)) = self.shared.queue.reserve(language).await {
            let event = JobEvent::Failed { error: error.to_owned() };
            self.shared.journal.push(delivery.job.id, event);
            self.ack(delivery.tag).await;
            if let Some(pool) = self.pools.get_mut(language) {
                pool.status.queued = pool.status.queued.saturating_sub(1);
            }
        }
    }

    async fn ack(&self, tag: u64) {
        if let Err(err) = self.shared.queue.ack(tag).await {
            tracing::warn!("acking job delivery {tag}: {err}");
        }
    }

    /// Hands jobs to ready sandboxes, one language after the other, while the global cap
    /// allows.
    async fn dispatch(&mut self) {
        let languages: Vec<_> = self.pools.keys().cloned().collect();
        let mut progressed = true;
        while progressed && self.running < self.shared.config.max_concurrent {
            progressed = false;
            for language in &languages {
                if self.running >= self.shared.config.max_concurrent {
                    break;
                }
                let has_ready = self.pools.get(language).is_some_and(|p| !p.ready.is_empty());
                if !has_ready {
                    continue;
                }
                let delivery = match self.shared.queue.reserve(language).await {
                    Ok(Some(delivery)) => delivery,
                    Ok(None) => continue,
                    Err(err) => {
                        tracing::warn!(%language, "reserving a job: {err}");
                        continue;
                    }
                };
                let Some(pool) = self.pools.get_mut(language) else { continue };
                let Some(sandbox) = pool.ready.pop_front() else { continue };
                pool.status.ready -= 1;
                pool.status.busy += 1;
                pool.status.queued = pool.status.queued.saturating_sub(1);
                self.running += 1;
                progressed = true;
                let (shared, outbox) = (self.shared.clone(), self.outbox.upgrade());
                if let Some(outbox) = outbox {
                    tokio::spawn(crate::worker::work(shared, outbox, delivery, sandbox));
                }
            }
        }
    }
}
