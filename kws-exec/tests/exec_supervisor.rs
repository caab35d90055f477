//! What the resident supervisor adds, in the real sandbox (Docker): hostile jobs against the
//! supervisor itself and its channel, each followed by a job on the same sandbox (reused, not
//! retired) that finds it clean; `Exited` at the end of the main process with nothing of the
//! job left; and a supervisor killed from outside.
#![cfg(feature = "docker")]

#[path = "exec_support.rs"]
mod support;

use std::time::Duration;

use futures::StreamExt;
use kws_exec::{ExecEngine, JobEvent, JobRunner, Limits, PoolStatus};
use kws_exec_supervisor::protocol::{Done, End, Report};
use support::{container_ids, engine_on, finish, label, next_job_is_clean, pool, run, user, wall};

const RUNNER: JobRunner = JobRunner::Supervisor;

async fn engine() -> Option<ExecEngine> {
    engine_on(RUNNER, 1, |_| {}).await
}

/// The next job of `language` finds the sandbox clean, and it is the same sandbox: reused,
/// not retired, since `before`.
async fn same_sandbox_is_clean(engine: &ExecEngine, language: &str, before: &PoolStatus) {
    next_job_is_clean(engine, language, RUNNER).await;
    let after = pool(engine, language);
    assert_eq!(after.retired, before.retired, "the sandbox was retired: {after:?}");
    assert!(after.reused >= before.reused + 2, "the sandbox was not reused: {after:?}");
}

/// Once the pools are idle, every container of the engine holds its supervisor, read from the
/// host's cgroups, and nothing else but, in a sandbox of a warm language (python3), the next
/// job's prepared process. That one is proven to be exactly the process the next job runs
/// in: a probe job prints its own pid, which is that process's pid in the sandbox.
async fn only_supervisors_left(engine: &ExecEngine) {
    engine.wait_until_full(Duration::from_secs(30)).await.expect("the pools are idle");
    let mut prepared = Vec::new();
    for id in container_ids(engine).await {
        let (language, process_1) = language_and_process_1(&id).await;
        let warm = language == "python3";
        // The prepare follows the sandbox's return to the pool by a frame: give it a moment.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let others = loop {
            let pids = kws_docker::processes(&id).expect("the engine runs on this host");
            let others: Vec<u32> =
                pids.into_iter().filter(|p| i64::from(*p) != process_1).collect();
            if !warm || !others.is_empty() || std::time::Instant::now() > deadline {
                break others;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        match (warm, others.as_slice()) {
            (false, []) => {}
            (true, [one]) => prepared.push(pid_in_sandbox(*one)),
            _ => panic!("container {id} ({language}) holds {others:?} besides its supervisor"),
        }
    }
    assert!(prepared.len() <= 1, "one python3 sandbox in these tests: {prepared:?}");
    if let Some(expected) = prepared.first() {
        let probe =
            run(engine, "python3", "import os\nprint(os.getpid())\n", "", Limits::default());
        let probe = probe.await;
        assert_eq!(
            probe.stdout().trim(),
            expected.to_string(),
            "the extra process was not the next job's"
        );
    }
}

/// A container's language label and the host pid of its process 1.
async fn language_and_process_1(id: &str) -> (String, i64) {
    let docker = kws_testenv::docker().await.expect("docker");
    let inspected = docker
        .inspect_container(id, None::<bollard::query_parameters::InspectContainerOptions>)
        .await
        .expect("inspect");
    let labels = inspected.config.and_then(|c| c.labels).unwrap_or_default();
    let language = labels.get(kws_exec::LANGUAGE_LABEL).cloned().unwrap_or_default();
    (language, inspected.state.and_then(|s| s.pid).expect("a running container has a pid"))
}

/// The pid of the host's process `host_pid` inside its own pid namespace.
fn pid_in_sandbox(host_pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{host_pid}/status")).expect("status");
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:")).expect("an NSpid line");
    line.split_whitespace().last().and_then(|p| p.parse().ok()).expect("a pid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cannot_forge_or_flood_or_close_the_supervisors_channel() {
    let Some(engine) = engine().await else { return };
    // Output that looks like the supervisor's own frames is only output.
    let forged = Report::Done(Done { end: End::Exited(0), wall_us: 1 }).encode();
    let printf: String = forged.iter().map(|b| format!("\\{b:03o}")).collect();
    let before = pool(&engine, "sh");
    let job =
        run(&engine, "sh", &format!("printf '{printf}'; exit 5"), "", Limits::default()).await;
    assert_eq!(job.stdout(), String::from_utf8_lossy(&forged));
    assert!(matches!(job.outcome(), JobEvent::Exited { code: 5, .. }), "{:?}", job.outcome());
    same_sandbox_is_clean(&engine, "sh", &before).await;

    let cases = [
        // Its descriptors of the channel are out of reach; then it floods its own output.
        ("echo x > /proc/1/fd/0 || echo refused; exec 0<&-; cat /dev/zero", None),
        // It closes everything it was given and goes on, then exits by itself.
        ("exec 0<&- 1>&- 2>&-; sleep 0.3; exit 4", Some(4)),
    ];
    for (source, code) in cases {
        let before = pool(&engine, "sh");
        let job = run(&engine, "sh", source, "some input", Limits::default()).await;
        match code {
            Some(code) => assert_eq!(
                job.outcome(),
                &JobEvent::Exited { code, wall_ms: wall_ms(&job.events) },
                "{source}"
            ),
            None => {
                assert_eq!(job.outcome(), &JobEvent::OutputLimitExceeded, "{source}");
                assert!(job.stdout().starts_with("refused\n"), "{source}");
            }
        }
        same_sandbox_is_clean(&engine, "sh", &before).await;
    }
    finish(engine).await;
}

fn wall_ms(events: &[JobEvent]) -> u64 {
    match events.last() {
        Some(JobEvent::Exited { wall_ms, .. }) => *wall_ms,
        _ => u64::MAX,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_uses_every_pid_does_not_stop_the_next_one() {
    let Some(engine) = engine().await else { return };
    let cases = [
        // Every pid taken, then the job exits while they all live (the shell gives up with
        // "can't fork").
        ("sh", "while :; do sleep 100 & done 2>/dev/null"),
        (
            "python3",
            "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            \
             time.sleep(100)\n        n += 1\nexcept OSError:\n    print('forked', n > 10)\n",
        ),
    ];
    for (language, source) in cases {
        let before = pool(&engine, language);
        let job = run(&engine, language, source, "", wall(Duration::from_secs(10))).await;
        assert!(matches!(job.outcome(), JobEvent::Exited { .. }), "{source}: {:?}", job.outcome());
        assert!(job.took < Duration::from_secs(5), "{source}: {:?}", job.took);
        only_supervisors_left(&engine).await;
        same_sandbox_is_clean(&engine, language, &before).await;
    }
    // Every pid taken until the wall time.
    let before = pool(&engine, "sh");
    let hold = "while :; do (while :; do sleep 100 & done) 2>/dev/null; done";
    let job = run(&engine, "sh", hold, "", wall(Duration::from_secs(2))).await;
    assert_eq!(job.outcome(), &JobEvent::TimedOut);
    same_sandbox_is_clean(&engine, "sh", &before).await;
    finish(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zombies_orphans_and_a_full_tmpfs_are_gone_for_the_next_job() {
    let Some(engine) = engine().await else { return };
    let zombies = "import os, time\nfor i in range(20):\n    if os.fork() == 0:\n        \
                   os._exit(0)\nfor i in range(10):\n    if os.fork() == 0:\n        \
                   if os.fork() == 0:\n            time.sleep(100)\n        os._exit(0)\n\
                   time.sleep(0.2)\nprint('left them', flush=True)\n";
    let before = pool(&engine, "python3");
    let job = run(&engine, "python3", zombies, "", Limits::default()).await;
    assert_eq!(job.stdout(), "left them\n");
    assert!(matches!(job.outcome(), JobEvent::Exited { code: 0, .. }), "{:?}", job.outcome());
    only_supervisors_left(&engine).await;
    same_sandbox_is_clean(&engine, "python3", &before).await;

    let fill = "for d in /workspace /tmp /var/tmp /dev/shm; do\n\
                dd if=/dev/zero of=$d/fill bs=1M 2>/dev/null\n\
                i=0; while [ $i -lt 300 ]; do : > $d/f$i || break; i=$((i+1)); done\n\
                done; df -k /workspace | tail -1; exit 0";
    let before = pool(&engine, "sh");
    let job = run(&engine, "sh", fill, "", Limits::default()).await;
    assert!(matches!(job.outcome(), JobEvent::Exited { code: 0, .. }), "{:?}", job.outcome());
    assert!(job.stdout().contains(" 100% "), "the work dir was not full: {}", job.stdout());
    // The next job's source has room again: the supervisor wiped the full tmpfs.
    same_sandbox_is_clean(&engine, "sh", &before).await;
    finish(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exited_comes_with_the_main_process_and_nothing_of_the_job_outlives_it() {
    let Some(engine) = engine().await else { return };
    let limit = wall(Duration::from_secs(10));
    // A detached child that keeps stdout open: the end is the main process's, at once.
    let cases = [
        ("sh", "sleep 5 & echo detached"),
        ("python3", "import subprocess\nsubprocess.Popen(['sleep', '5'])\nprint('detached')\n"),
    ];
    for (language, source) in cases {
        let before = pool(&engine, language);
        let job = run(&engine, language, source, "", limit).await;
        let JobEvent::Exited { code: 0, wall_ms } = *job.outcome() else {
            panic!("{source}: {:?}", job.outcome());
        };
        assert_eq!(job.stdout(), "detached\n");
        assert!(wall_ms < 1000, "{source}: wall_ms {wall_ms} is not the main process's");
        assert!(job.took < Duration::from_secs(2), "{source}: Exited after {:?}", job.took);
        // When `Exited` is seen, the sandbox holds its supervisor only.
        only_supervisors_left(&engine).await;
        same_sandbox_is_clean(&engine, language, &before).await;
    }

    // A child that waits until just after its parent exits, then writes: it is killed with the
    // parent, or its line comes before `Exited`; never after, never in the next job.
    let late = "( while kill -0 $$ 2>/dev/null; do :; done; echo late ) & echo early; exit 0";
    for _ in 0..5 {
        let before = pool(&engine, "sh");
        let job = run(&engine, "sh", late, "", limit).await;
        assert!(matches!(job.outcome(), JobEvent::Exited { code: 0, .. }), "{:?}", job.outcome());
        let out = job.stdout();
        assert!(out == "early\n" || out == "early\nlate\n", "{out:?}");
        only_supervisors_left(&engine).await;
        let after = run(&engine, "sh", "sleep 0.2; echo next", "", limit).await;
        assert_eq!(after.stdout(), "next\n", "the late writer reached the next job");
        same_sandbox_is_clean(&engine, "sh", &before).await;
    }
    finish(engine).await;
}

/// The host pid of a container's process 1.
async fn process_1_of(id: &str) -> i64 {
    language_and_process_1(id).await.1
}

async fn kill_9(pid: i64) {
    let status = tokio::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .await
        .expect("kill runs");
    assert!(status.success(), "kill -9 {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_killed_from_outside_retires_its_sandbox_and_ends_its_job_clearly() {
    let Some(engine) = engine_on(RUNNER, 1, |c| {
        c.languages = kws_exec::Languages::new([kws_exec::Language::sh()]).expect("valid");
    })
    .await
    else {
        return;
    };
    // Mid-job.
    let before = pool(&engine, "sh");
    let id = engine
        .submit(&user("crash"), &label("sh"), "echo started; sleep 30", "", Limits::default())
        .await
        .expect("submitted");
    let mut events = engine.events(id).expect("known");
    while let Some(event) = events.next().await {
        if event == JobEvent::Stdout(b"started\n".to_vec()) {
            break;
        }
    }
    let [container] = <[String; 1]>::try_from(container_ids(&engine).await).expect("one sandbox");
    kill_9(process_1_of(&container).await).await;
    let rest: Vec<_> = tokio::time::timeout(Duration::from_secs(10), events.collect())
        .await
        .expect("the job ends soon after");
    let Some(JobEvent::Killed { reason }) = rest.last() else { panic!("{rest:?}") };
    assert!(reason.contains("sandbox died") && reason.contains("supervisor"), "{reason}");
    engine.wait_until_full(Duration::from_secs(30)).await.expect("the pool refills");
    assert_eq!(pool(&engine, "sh").retired, before.retired + 1);
    next_job_is_clean(&engine, "sh", RUNNER).await;

    // Idle: the pool notices by itself and refills.
    let before = pool(&engine, "sh");
    let [container] = <[String; 1]>::try_from(container_ids(&engine).await).expect("one sandbox");
    kill_9(process_1_of(&container).await).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while pool(&engine, "sh").retired == before.retired {
        assert!(std::time::Instant::now() < deadline, "the lost sandbox was not retired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    engine.wait_until_full(Duration::from_secs(30)).await.expect("the pool refills");
    assert!(!container_ids(&engine).await.contains(&container), "the dead sandbox is gone");
    next_job_is_clean(&engine, "sh", RUNNER).await;
    finish(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_python_job_runs_as_a_plain_start_would() {
    let cold =
        kws_exec::Language { name: label("pycold"), warm: None, ..kws_exec::Language::python3() };
    let broken = kws_exec::Language {
        name: label("pybroken"),
        warm: Some(vec!["no-such-interpreter".into()]),
        ..kws_exec::Language::python3()
    };
    let Some(engine) = engine_on(RUNNER, 1, |c| {
        c.languages =
            kws_exec::Languages::new([kws_exec::Language::python3(), cold, broken]).expect("valid");
    })
    .await
    else {
        return;
    };
    let big_source = format!("{}print(len(open(__file__).read()))\n", "x = 1\n".repeat(10_900));
    let programs = [
        "print('hello')\n".to_owned(),
        "import sys\nprint(sorted(globals()), __name__, __file__, __cached__, __spec__, \
         __package__, type(__loader__).__name__, sys.argv, sys.path, sorted(sys.modules))\n"
            .to_owned(),
        "def f():\n    1/0\nf()\n".to_owned(),
        "x = (\n".to_owned(),
        "import sys\nsys.exit(3)\n".to_owned(),
        "raise SystemExit('bye')\n".to_owned(),
        "import sys\ndata = sys.stdin.read()\nprint(len(data), data[:9])\n".to_owned(),
        "# -*- coding: utf-8 -*-\nprint(open(__file__).read().splitlines()[1], 'é')\n".to_owned(),
        "import atexit\natexit.register(lambda: print('bye'))\nprint('hi')\n".to_owned(),
        "import pickle\nclass A: pass\nprint(type(pickle.loads(pickle.dumps(A()))).__module__)\n"
            .to_owned(),
        "import sys\nsys.excepthook = lambda *a: print('hooked', a[0].__name__)\nraise ValueError\n"
            .to_owned(),
        big_source,
    ];
    let stdin = format!("{}\n", "in put ".repeat(9_000));
    for program in &programs {
        let warm = run(&engine, "python3", program, &stdin, Limits::default()).await;
        let plain = run(&engine, "pycold", program, &stdin, Limits::default()).await;
        let code = |job: &support::Finished| match job.outcome() {
            JobEvent::Exited { code, .. } => *code,
            other => panic!("{program}: {other:?}"),
        };
        assert_eq!(code(&warm), code(&plain), "{program}");
        assert_eq!(warm.stdout(), plain.stdout(), "{program}");
        assert_eq!(warm.stderr(), plain.stderr(), "{program}");
    }
    // A warm command that cannot start ends the job with a clear message, as a bad run
    // command does, and the sandbox goes on.
    for _ in 0..2 {
        let job = run(&engine, "pybroken", "print('x')\n", "", Limits::default()).await;
        assert!(matches!(job.outcome(), JobEvent::Exited { code: 125, .. }), "{:?}", job.events);
        assert!(job.stderr().contains("no-such-interpreter"), "{}", job.stderr());
    }
    assert_eq!(pool(&engine, "pybroken").retired, 0);
    finish(engine).await;
}
