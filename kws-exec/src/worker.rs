//! A worker: runs one delivered job in its sandbox, then returns the sandbox to its pool
//! (re-armed, or proven clean by its supervisor) or retires it.

use std::sync::{Arc, atomic::Ordering};

use tokio::sync::mpsc;

use crate::{
    docker_exec::{self, JobRun},
    engine::Shared,
    event::JobEvent,
    queue::Delivery,
    sandbox::{Aftermath, Resident, Sandbox},
    scheduler::Message,
    supervised::SupervisedRun,
};

/// Runs one delivered job, acks it, then gives its sandbox back or retires it.
pub(crate) async fn work(
    shared: Arc<Shared>,
    outbox: mpsc::UnboundedSender<Message>,
    delivery: Delivery,
    mut sandbox: Sandbox,
) {
    let job = &delivery.job;
    let language = shared.config.languages.get(&job.language);
    // At-least-once delivery: a job that already ran is acked, not run again.
    let aftermath = match language {
        _ if shared.journal.is_finished(job.id) => None,
        Some(_) => Some(match (&sandbox.resident, &shared.watch) {
            (Resident::Armed(_), Some(watch)) => {
                let run = JobRun { sandboxes: &shared.sandboxes, watch, journal: &shared.journal };
                run.run(&mut sandbox, job).await
            }
            _ => {
                let run = SupervisedRun { sandboxes: &shared.sandboxes, journal: &shared.journal };
                run.run(&mut sandbox, job).await
            }
        }),
        None => {
            let error = format!("unknown language {}", job.language);
            shared.journal.push(job.id, JobEvent::Failed { error });
            None
        }
    };
    if let Err(err) = shared.queue.ack(delivery.tag).await {
        tracing::warn!(job = %job.id, "acking a finished job: {err}");
    }
    let _ = outbox.send(Message::JobDone);
    let reusable = match (aftermath, language) {
        (None, _) => Ok(()),
        (Some(Aftermath::Retire), _) => Err("killed".to_owned()),
        _ if shared.closed.load(Ordering::SeqCst) => Err("shutting down".to_owned()),
        (Some(Aftermath::Reuse), _) => Ok(()),
        (Some(Aftermath::ProveClean), None) => Err("unknown language".to_owned()),
        (Some(Aftermath::ProveClean), Some(language)) => {
            match shared.sandboxes.processes_gone(&sandbox).await {
                Ok(()) => docker_exec::arm(&shared.sandboxes.docker, &mut sandbox, language).await,
                Err(why) => Err(why),
            }
        }
    };
    match reusable {
        Ok(()) => {
            let _ = outbox.send(Message::Returned(sandbox));
        }
        Err(why) => {
            tracing::debug!(container = %sandbox.id, "retiring an exec sandbox: {why}");
            shared.sandboxes.retire(&mut sandbox).await;
            if let Some(watch) = &shared.watch {
                watch.forget_container(&sandbox.id);
            }
            let _ = outbox.send(Message::Retired(sandbox.language));
        }
    }
}
