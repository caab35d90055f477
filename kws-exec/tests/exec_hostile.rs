//! Hostile code in the real sandbox (Docker): each case ends within its limit plus a small
//! grace with the right event, the next job of that language succeeds in a clean sandbox, the
//! host is unaffected, and the pool is back at full size.
#![cfg(feature = "docker")]

#[path = "exec_support.rs"]
mod support;

use std::time::Duration;

use kws_exec::{JobEvent, JobRunner, Limits};
pub use support::next_job_is_clean;
use support::{Finished, engine_on, finish, pool, run, wall};

/// Time past a limit within which a killed job's terminal event must be there.
const GRACE: Duration = Duration::from_millis(1500);
const LIMIT: Duration = Duration::from_secs(2);

fn assert_ended_in_time(job: &Finished, limit: Duration) {
    assert!(job.took <= limit + GRACE, "took {:?} for a {limit:?} limit", job.took);
}

async fn runaway_programs_time_out_and_their_sandbox_is_replaced(runner: JobRunner) {
    let Some(engine) = engine_on(runner, 1, |_| {}).await else { return };
    let cases = [
        ("python3", "while True:\n    pass\n"),
        ("sh", "sleep 1000000"),
        ("sh", "echo stopping; kill -STOP $$; echo never"),
        ("sh", "echo stopping; kill -STOP 0; echo never"),
        // Output closed early, the program still running: its end is awaited, not assumed.
        ("sh", "echo closing; exec >&- 2>&-; sleep 1000"),
        // A background process that keeps the output open past the end of the job: the job
        // runs until its output closes with `docker exec`; the supervisor ends it with its main
        // process (see exec_supervisor.rs).
        ("sh", "sleep 1000 & echo detached"),
    ];
    for (language, source) in cases {
        if runner == JobRunner::Supervisor && source.contains("detached") {
            continue;
        }
        let retired = engine.pools()[&support::label(language)].retired;
        let job = run(&engine, language, source, "", wall(LIMIT)).await;
        assert_eq!(job.outcome(), &JobEvent::TimedOut, "{source}: {:?}", job.events.last());
        assert!(job.took >= LIMIT, "{source}: ended early after {:?}", job.took);
        assert_ended_in_time(&job, LIMIT);
        assert!(!job.stdout().contains("never"), "{source}");
        next_job_is_clean(&engine, language, runner).await;
        // The supervisor kills and reaps the job itself, so its sandbox is reused; without it,
        // killing the container is the only way.
        let replaced = usize::from(runner == JobRunner::DockerExec) as u64;
        assert_eq!(pool(&engine, language).retired, retired + replaced, "{source}");
    }
    finish(engine).await;
}

async fn a_fork_bomb_hits_the_pids_limit_and_the_host_keeps_working(runner: JobRunner) {
    let Some(engine) = engine_on(runner, 1, |_| {}).await else { return };
    let bomb =
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n";
    let submitted = std::time::Instant::now();
    let bombing = run(&engine, "python3", bomb, "", wall(LIMIT));
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        // The host can still start processes, and another language's jobs still run.
        let host = tokio::process::Command::new("true").status().await.expect("host forks");
        assert!(host.success());
        let other = run(&engine, "sh", "echo alive", "", Limits::default()).await;
        assert_eq!(other.stdout(), "alive\n");
        submitted.elapsed()
    };
    let (job, other_done) = tokio::join!(bombing, meanwhile);
    assert!(other_done < LIMIT + GRACE, "the other job waited for the bomb: {other_done:?}");
    assert_eq!(job.outcome(), &JobEvent::TimedOut, "{:?}", job.events.last());
    assert_ended_in_time(&job, LIMIT);
    next_job_is_clean(&engine, "python3", runner).await;
    // (Its shells' "can't fork" complaints would otherwise reach the output cap first. The
    // job's own shell then becomes `sleep` with `exec`: a fork for it would race the bomb for
    // the last pids, and losing that race ends the shell early with "can't fork".)
    let sh_bomb = "b() { b | b & }; b 2>/dev/null; exec sleep 100";
    let job = run(&engine, "sh", sh_bomb, "", wall(LIMIT)).await;
    assert_eq!(job.outcome(), &JobEvent::TimedOut, "{:?}", job.events.last());
    assert_ended_in_time(&job, LIMIT);
    next_job_is_clean(&engine, "sh", runner).await;
    finish(engine).await;
}

async fn floods_stop_at_the_output_cap(runner: JobRunner) {
    let Some(engine) = engine_on(runner, 1, |_| {}).await else { return };
    let cap = 64 * 1024;
    let cases = [
        ("sh", "yes flood"),
        ("sh", "yes flood >&2"),
        (
            "python3",
            "import sys\nwhile True:\n    sys.stderr.write('e' * 4096)\n    print('o' * 100)\n",
        ),
    ];
    for (language, source) in cases {
        let job = run(&engine, language, source, "", Limits::default()).await;
        assert_eq!(job.outcome(), &JobEvent::OutputLimitExceeded, "{source}");
        assert_eq!(job.output_len(), cap, "{source}: exactly the cap is delivered");
        assert!(job.took < Duration::from_secs(3), "{source}: took {:?}", job.took);
        next_job_is_clean(&engine, language, runner).await;
    }
    finish(engine).await;
}

async fn files_left_behind_are_gone_for_the_next_job_of_a_reused_sandbox(runner: JobRunner) {
    let Some(engine) = engine_on(runner, 1, |_| {}).await else { return };
    let litter = "for d in /workspace /tmp /var/tmp /dev/shm; do\n\
                  echo secret > $d/f; echo secret > $d/.hidden; mkdir -p $d/locked/deep\n\
                  echo secret > $d/locked/deep/g; chmod 000 $d/locked/deep $d/locked\n\
                  done; echo littered";
    let reused = engine.pools()[&support::label("sh")].reused;
    let job = run(&engine, "sh", litter, "", Limits::default()).await;
    assert!(matches!(job.outcome(), JobEvent::Exited { code: 0, .. }), "{:?}", job.events);
    assert_eq!(job.stdout(), "littered\n");
    next_job_is_clean(&engine, "sh", runner).await;
    let pool = &engine.pools()[&support::label("sh")];
    assert!(pool.reused > reused, "the sandbox was wiped and reused: {pool:?}");

    let py_litter = "import os\nfor d in ['/tmp', '/var/tmp', '/dev/shm']:\n    \
                     open(d + '/py', 'w').write('secret')\nprint('ok')\n";
    let job = run(&engine, "python3", py_litter, "", Limits::default()).await;
    assert_eq!(job.stdout(), "ok\n");
    next_job_is_clean(&engine, "python3", runner).await;
    finish(engine).await;
}

async fn a_disk_fill_stops_at_the_tmpfs_size_and_the_root_is_read_only(runner: JobRunner) {
    let Some(engine) = engine_on(runner, 1, |_| {}).await else { return };
    let fill = "dd if=/dev/zero of=/tmp/fill bs=1M count=200 2>&1; echo \"dd=$?\"\n\
                touch /etc/x 2>&1; touch /x 2>&1; df -k /tmp | tail -1";
    let job = run(&engine, "sh", fill, "", Limits::default()).await;
    let out = job.stdout();
    assert!(matches!(job.outcome(), JobEvent::Exited { code: 0, .. }), "{:?}", job.events);
    assert!(out.contains("No space left on device"), "{out}");
    assert!(!out.contains("dd=0"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(job.took < Duration::from_secs(5), "{:?}", job.took);
    next_job_is_clean(&engine, "sh", runner).await;
    finish(engine).await;
}

async fn a_huge_allocation_is_killed_by_the_memory_limit(runner: JobRunner) {
    let Some(engine) = engine_on(runner, 1, |_| {}).await else { return };
    let job =
        run(&engine, "python3", "x = bytearray(1 << 30)\nprint('allocated')\n", "", wall(LIMIT))
            .await;
    let JobEvent::Killed { reason } = job.outcome() else {
        panic!("expected Killed, got {:?}", job.events);
    };
    assert!(reason.contains("memory"), "{reason}");
    assert!(!job.stdout().contains("allocated"));
    assert_ended_in_time(&job, LIMIT);
    next_job_is_clean(&engine, "python3", runner).await;
    finish(engine).await;
}

async fn no_network_no_secrets_and_a_background_process_dies_with_its_sandbox(runner: JobRunner) {
    let Some(engine) = engine_on(runner, 1, |_| {}).await else { return };
    // A listener on every host address: the sandbox must not reach it.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let connect = format!(
        "import socket\nfor host in ['127.0.0.1', '172.17.0.1', '10.0.2.2', '8.8.8.8']:\n    \
         try:\n        socket.create_connection((host, {port}), timeout=0.5)\n        \
         print(host, 'CONNECTED')\n    except OSError as e:\n        print(host, 'blocked')\n\
         print(sorted(i[1] for i in socket.if_nameindex()))\n"
    );
    let accept = tokio::time::timeout(Duration::from_secs(3), listener.accept());
    let (job, accepted) =
        tokio::join!(run(&engine, "python3", &connect, "", Limits::default()), accept);
    assert!(accepted.is_err(), "the sandbox reached the host: {accepted:?}");
    let out = job.stdout();
    assert!(!out.contains("CONNECTED"), "{out}");
    assert_eq!(out.matches("blocked").count(), 4, "{out}");
    assert!(out.contains("['lo']"), "only loopback: {out}");
    next_job_is_clean(&engine, "python3", runner).await;

    let env = "import os\nfor k in sorted(os.environ): print(k + '=' + os.environ[k])\n\
               try:\n    open('/proc/1/environ').read()\n    print('READ PID 1')\n\
               except OSError:\n    print('pid 1 hidden')\n";
    let job = run(&engine, "python3", env, "", Limits::default()).await;
    let out = job.stdout();
    let allowed = ["PATH", "HOME", "LANG", "TMPDIR", "HOSTNAME", "PWD", "OLDPWD"];
    for line in out.lines().filter(|l| l.contains('=')) {
        let name = line.split('=').next().unwrap_or_default();
        assert!(allowed.contains(&name), "unexpected variable in the sandbox: {line}");
    }
    for (name, value) in std::env::vars() {
        if value.len() >= 8 {
            assert!(!out.contains(&value), "the host's {name} leaked into the sandbox");
        }
    }
    assert!(out.contains("pid 1 hidden"), "{out}");

    // A process that detaches and outlives its job: the job ends, the process dies (killed by
    // the supervisor, or with the retired sandbox), and the next job does not see it.
    let retired = engine.pools()[&support::label("sh")].retired;
    let job =
        run(&engine, "sh", "sleep 1000 >/dev/null 2>&1 </dev/null &\necho left", "", wall(LIMIT))
            .await;
    assert!(matches!(job.outcome(), JobEvent::Exited { code: 0, .. }), "{:?}", job.events);
    assert!(job.took < LIMIT, "{:?}", job.took);
    next_job_is_clean(&engine, "sh", runner).await;
    let replaced = usize::from(runner == JobRunner::DockerExec) as u64;
    assert_eq!(pool(&engine, "sh").retired, retired + replaced);
    finish(engine).await;
}

/// A job cannot reach the sandbox's long-lived process 1 (the idle `sleep` or the supervisor,
/// another uid) by signals, ptrace, `process_vm_writev`, /proc/1/mem, /proc/1/environ or
/// /proc/1/fd, nor the next job's process (started only after the job is proven gone); the
/// sandbox is then reused, not retired, and the next job finds process 1 untouched.
async fn a_job_cannot_tamper_with_process_1_and_the_next_job_of_the_reused_sandbox_is_clean(
    runner: JobRunner,
) {
    let Some(engine) = engine_on(runner, 1, |_| {}).await else { return };
    // ptrace, process_vm_writev and unshare through perl's raw `syscall` (x86_64 numbers 101,
    // 311, 272). PTRACE_TRACEME and a user namespace would not touch process 1: they show the
    // sandbox's own seccomp profile is in force (Docker's default allows PTRACE_TRACEME).
    let tamper = r#"import os, signal
def outcome(what, ok):
    print(what, 'DONE' if ok else 'refused', flush=True)
for sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM, signal.SIGSEGV):
    try:
        os.kill(1, sig)
        outcome('kill', True)
    except PermissionError:
        outcome('kill', False)
for path, mode in (('/proc/1/mem', 'r+b'), ('/proc/1/oom_score_adj', 'w'),
                   ('/proc/1/environ', 'rb'), ('/proc/1/fd/0', 'wb'), ('/proc/1/fd/1', 'rb')):
    try:
        open(path, mode).close()
        outcome('open ' + path, True)
    except OSError:
        outcome('open ' + path, False)
try:
    os.listdir('/proc/1/fd')
    outcome('list /proc/1/fd', True)
except OSError:
    outcome('list /proc/1/fd', False)
perl = """
for $r (16, 0x4206) { print syscall(101, $r, 1, 0, 0) == -1 ? "ptrace refused\n" : "ptrace DONE\n" }
my $b = "x" x 8; my $v = pack("PQ", $b, 8);
print syscall(311, 1, $v, 1, $v, 1, 0) == -1 ? "vm_writev refused\n" : "vm_writev DONE\n";
print syscall(101, 0, 0, 0, 0) == -1 ? "traceme refused\n" : "traceme DONE\n";
print syscall(272, 0x10000000) == -1 ? "unshare refused\n" : "unshare DONE\n";
"""
os.execvp('perl', ['perl', '-e', perl])
"#;
    let pool = engine.pools()[&support::label("python3")].clone();
    let job = run(&engine, "python3", tamper, "", Limits::default()).await;
    assert!(matches!(job.outcome(), JobEvent::Exited { code: 0, .. }), "{:?}", job.events);
    let out = job.stdout();
    assert_eq!(out.matches("refused").count(), 15, "{out}\n{}", job.stderr());
    assert!(!out.contains("DONE"), "{out}");
    // Signals to every process the job's uid may reach (Linux spares the sender and process 1).
    let sh = "kill -STOP 1; kill -9 1; kill -STOP -1; kill -KILL -1; echo survived";
    let sh = run(&engine, "sh", sh, "", wall(LIMIT)).await;
    assert_eq!(sh.stdout(), "survived\n", "{:?}", sh.events);

    for language in ["python3", "sh"] {
        next_job_is_clean(&engine, language, runner).await;
        let init = "cat /proc/1/cmdline | tr '\\0' ' '; echo\n\
                    grep -E '^(State|Uid|TracerPid):' /proc/1/status | tr -s '\\t ' ' '";
        let next = run(&engine, "sh", init, "", Limits::default()).await;
        let out = next.stdout();
        let resident = format!("{} \n", support::resident_cmdline(runner));
        assert!(out.starts_with(&resident), "{out}");
        // Stopped (T) or traced (t) are what a job would have done; the supervisor may be
        // running (R) while it serves this very probe.
        let state = out.lines().find_map(|l| l.strip_prefix("State: ")).unwrap_or_default();
        assert!(state.starts_with(['S', 'R']), "process 1 was stopped: {out}");
        assert!(out.contains("Uid: 65534 65534 65534 65534"), "{out}");
        assert!(out.contains("TracerPid: 0"), "process 1 is traced: {out}");
    }
    let after = &engine.pools()[&support::label("python3")];
    assert!(after.reused > pool.reused, "the tampered sandbox was reused: {after:?}");
    assert_eq!(after.retired, pool.retired, "the tampering job forced a retirement: {after:?}");
    finish(engine).await;
}

on_both_runners!(
    runaway_programs_time_out_and_their_sandbox_is_replaced,
    a_fork_bomb_hits_the_pids_limit_and_the_host_keeps_working,
    floods_stop_at_the_output_cap,
    files_left_behind_are_gone_for_the_next_job_of_a_reused_sandbox,
    a_disk_fill_stops_at_the_tmpfs_size_and_the_root_is_read_only,
    a_huge_allocation_is_killed_by_the_memory_limit,
    no_network_no_secrets_and_a_background_process_dies_with_its_sandbox,
    a_job_cannot_tamper_with_process_1_and_the_next_job_of_the_reused_sandbox_is_clean,
);
