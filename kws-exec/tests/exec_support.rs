//! Shared by the exec tests: an engine on the test Docker with small pools, and a job runner.
#![cfg(feature = "docker")]
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use kws_core::{DnsLabel, JobId, OwnerId};
use kws_exec::{ExecConfig, ExecEngine, JobEvent, Limits, RateLimit};

/// An engine with `pool_size` containers per language, labelled for this test run.
pub async fn engine(pool_size: usize, tweak: impl FnOnce(&mut ExecConfig)) -> Option<ExecEngine> {
    let docker = kws_testenv::docker().await?;
    let mut config = ExecConfig {
        pool_size,
        labels: kws_testenv::test_labels(),
        rate: RateLimit { per_second: 1000.0, burst: 1000 },
        ..ExecConfig::default()
    };
    tweak(&mut config);
    Some(ExecEngine::start(docker, config).await.expect("the engine starts"))
}

pub fn label(name: &str) -> DnsLabel {
    DnsLabel::parse(name).expect("valid label")
}

pub fn user(name: &str) -> OwnerId {
    OwnerId::parse(name).expect("valid owner")
}

/// A finished job: its events and how long it took from submit to its terminal event.
#[derive(Debug)]
pub struct Finished {
    pub id: JobId,
    pub events: Vec<JobEvent>,
    pub took: Duration,
}

impl Finished {
    pub fn outcome(&self) -> &JobEvent {
        self.events.last().expect("a terminal event")
    }

    fn bytes(&self, stderr: bool) -> Vec<u8> {
        self.events
            .iter()
            .filter_map(|e| match (e, stderr) {
                (JobEvent::Stdout(b), false) | (JobEvent::Stderr(b), true) => Some(b.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.bytes(false)).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.bytes(true)).into_owned()
    }

    pub fn output_len(&self) -> usize {
        self.bytes(false).len() + self.bytes(true).len()
    }
}

/// Submits a job and follows its events to the end.
pub async fn run(
    engine: &ExecEngine,
    language: &str,
    source: &str,
    stdin: &str,
    limits: Limits,
) -> Finished {
    let started = Instant::now();
    let id = engine
        .submit(&user("tester"), &label(language), source, stdin, limits)
        .await
        .expect("submitted");
    let stream = engine.events(id).expect("the job is known");
    let events: Vec<JobEvent> =
        tokio::time::timeout(Duration::from_secs(60), stream.collect()).await.expect("it ends");
    let took = started.elapsed();
    assert!(matches!(events.first(), Some(JobEvent::Queued { .. })), "{events:?}");
    assert!(events.last().is_some_and(JobEvent::is_terminal), "{events:?}");
    Finished { id, events, took }
}

/// Limits with this wall time and the default output cap.
pub fn wall(wall_time: Duration) -> Limits {
    Limits { wall_time, ..Limits::default() }
}

/// Containers of this engine still in Docker.
pub async fn containers_of(engine: &ExecEngine) -> usize {
    let docker = kws_testenv::docker().await.expect("docker");
    let filter = format!("kws.exec.engine={}", engine.engine_id());
    let filters = std::collections::HashMap::from([("label", vec![filter])]);
    let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    docker.list_containers(Some(options)).await.expect("list").len()
}

/// Shuts the engine down and checks nothing of it is left in Docker.
pub async fn finish(engine: ExecEngine) {
    let id = engine.engine_id().to_owned();
    engine.shutdown().await.expect("shutdown");
    let docker = kws_testenv::docker().await.expect("docker");
    let filters =
        std::collections::HashMap::from([("label", vec![format!("kws.exec.engine={id}")])]);
    let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let left = docker.list_containers(Some(options)).await.expect("list");
    assert!(left.is_empty(), "containers left after shutdown: {left:?}");
}
