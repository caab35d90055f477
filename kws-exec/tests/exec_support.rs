//! Shared by the exec tests: an engine on the test Docker with small pools, and a job runner.
#![cfg(feature = "docker")]
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use kws_core::{DnsLabel, JobId, OwnerId};
use kws_exec::{ExecConfig, ExecEngine, JobEvent, JobRunner, Limits, PoolStatus, RateLimit};

/// Runs the test function `$name(runner)` once per runner, as `$name::supervisor` and
/// `$name::docker_exec`.
#[macro_export]
macro_rules! on_both_runners {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn supervisor() {
                super::$name(kws_exec::JobRunner::Supervisor).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn docker_exec() {
                super::$name(kws_exec::JobRunner::DockerExec).await
            }
        }
    )*};
}

/// An engine with `pool_size` containers per language, labelled for this test run.
pub async fn engine(pool_size: usize, tweak: impl FnOnce(&mut ExecConfig)) -> Option<ExecEngine> {
    engine_on(JobRunner::default(), pool_size, tweak).await
}

/// An engine of `runner` with `pool_size` containers per language, labelled for this test run.
pub async fn engine_on(
    runner: JobRunner,
    pool_size: usize,
    tweak: impl FnOnce(&mut ExecConfig),
) -> Option<ExecEngine> {
    let docker = kws_testenv::docker().await?;
    let mut config = ExecConfig {
        runner,
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

/// The pool of `language`.
pub fn pool(engine: &ExecEngine, language: &str) -> PoolStatus {
    engine.pools()[&label(language)].clone()
}

/// The full ids of this engine's running containers.
pub async fn container_ids(engine: &ExecEngine) -> Vec<String> {
    let docker = kws_testenv::docker().await.expect("docker");
    let filter = format!("kws.exec.engine={}", engine.engine_id());
    let filters = std::collections::HashMap::from([("label", vec![filter])]);
    let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .filters(&filters)
        .build();
    let list = docker.list_containers(Some(options)).await.expect("list");
    list.into_iter().filter_map(|c| c.id).collect()
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

/// The command line of a sandbox's process 1 under `runner`, as `/proc/1/cmdline` shows it.
pub fn resident_cmdline(runner: JobRunner) -> &'static str {
    match runner {
        JobRunner::DockerExec => "sleep 2147483647",
        _ => kws_exec::SUPERVISOR_PATH,
    }
}

/// After a hostile job: the next job of the language runs normally, in a sandbox with empty
/// writable paths and no process but process 1 (the runner's) and its own, and the pool is
/// full again.
pub async fn next_job_is_clean(engine: &ExecEngine, language: &str, runner: JobRunner) {
    let probe = match language {
        "python3" => {
            "import os\nfor d in ['/workspace', '/tmp', '/var/tmp', '/dev/shm']:\n    \
             print(d, sorted(x for x in os.listdir(d) if x != 'main.py'))\n\
             for p in os.listdir('/proc'):\n    \
             if p.isdigit() and int(p) != os.getpid():\n        \
             print('proc', p, open('/proc/%s/cmdline' % p).read().replace('\\0', ' ').strip())\n"
        }
        _ => {
            "for d in /workspace /tmp /var/tmp /dev/shm; do echo \"$d [$(ls -A $d | grep -v \
             '^main.sh$' | tr '\\n' ' ')]\"; done\n\
             for p in /proc/[0-9]*; do [ \"${p#/proc/}\" = \"$$\" ] || \
             echo \"proc ${p#/proc/} $(tr '\\0' ' ' < $p/cmdline)\"; done\n"
        }
    };
    let next = run(engine, language, probe, "", Limits::default()).await;
    assert!(matches!(next.outcome(), JobEvent::Exited { code: 0, .. }), "{:?}", next.events);
    let out = next.stdout();
    for dir in ["/workspace", "/tmp", "/var/tmp", "/dev/shm"] {
        let empty = [format!("{dir} []"), format!("{dir} [ ]")];
        assert!(
            out.lines().any(|l| empty.iter().any(|e| l.trim_end() == e.trim_end())),
            "{dir} is not empty for the next job: {out}"
        );
    }
    // Process 1 is the runner's; the others are the probe's own shell pieces (a forked
    // `sh main.sh`, `tr`), which may have ended by the time their command line is read.
    let resident = resident_cmdline(runner);
    let mut saw_resident = false;
    for process in out.lines().filter_map(|l| l.strip_prefix("proc ")) {
        let (pid, cmdline) = process.split_once(' ').unwrap_or((process, ""));
        let cmdline = cmdline.trim();
        if pid == "1" {
            assert_eq!(cmdline, resident, "process 1 changed: {out}");
            saw_resident = true;
        } else {
            let own = ["sh main.sh", "tr"].iter().any(|p| cmdline.starts_with(p));
            assert!(own || cmdline.is_empty(), "a process of an earlier job is visible: {out}");
        }
    }
    assert!(saw_resident, "process 1 is not visible: {out}");
    engine.wait_until_full(Duration::from_secs(30)).await.expect("the pool refills");
}
