//! `kws-exec-supervisor`: process 1 of a kws-exec sandbox.
//!
//! It starts as root with only CAP_KILL, CAP_SETUID and CAP_SETGID (the engine creates the
//! container so), makes itself not dumpable, reads the `Setup` frame, and changes to its own
//! uid (65534: neither root nor the job's), keeping those three capabilities. Then, for every
//! `Run`:
//!
//! - it forks the job's process, which starts a session of its own, gets three fresh pipes as
//!   its stdio (no other descriptor), becomes the job's uid and gid with no capability left,
//!   writes the source into the work dir and execs the language's command. With a warm
//!   command, the engine's `Prepare` (sent once the sandbox is proven clean) starts that
//!   process ahead of the job, the same way but with a fourth pipe as its descriptor 3, and
//!   execs the warm command, which waits for the source there: the `Run` only sends the
//!   source down it, and the interpreter's start is off the job's latency;
//! - it streams the job's output as `Stdout`/`Stderr` frames, stops at the output cap, enforces
//!   the wall time, and reaps every child as it ends (orphans come to process 1);
//! - when the main process ends (or a limit is hit) it SIGKILLs every other process of the
//!   sandbox and reaps them until `/proc` shows no process but itself, then forwards what the
//!   pipes still hold: a detached child that kept stdout open neither delays the end nor
//!   outlives it. Only then does it report `Done` (processes that would not die: a `Fault`
//!   instead, and it exits, which makes the kernel kill them);
//! - it wipes every writable path and removes System V IPC objects in a child under the job's
//!   uid, checks that nothing is left and no process but itself is there, and reports `Ready`
//!   (or a `Fault`, then it exits and the engine retires the sandbox).
//!
//! What a job cannot do to it: signal it (another uid, another session; and the kernel drops
//! signals to a pid namespace's init that it has no handler for), ptrace it or use
//! `process_vm_*` on it (the sandbox's seccomp profile, another uid, not dumpable), open
//! `/proc/1/mem`, `/proc/1/environ` or `/proc/1/fd/*` (not dumpable: owned by root, ptrace
//! access checks fail), reach its stdio (never inherited), or share a writable path with it
//! (it writes no file).

mod channel;
mod job;
mod sys;
mod wipe;

use kws_exec_supervisor::protocol::{Report, Request, Setup};

use channel::Channel;

fn main() {
    let mut channel = Channel::default();
    let code = match serve(&mut channel) {
        Ok(()) => 0,
        Err(why) => {
            let _ = channel.send(&Report::Fault(why));
            1
        }
    };
    std::process::exit(code);
}

/// Sets up, then runs jobs until the engine closes the channel (`Ok`) or something is wrong.
fn serve(channel: &mut Channel) -> Result<(), String> {
    sys::set_dumpable(false).map_err(|e| format!("making the supervisor not dumpable: {e}"))?;
    let setup = match channel.receive()? {
        Some(Request::Setup(setup)) => setup,
        Some(Request::Run(_) | Request::Prepare) => {
            return Err("a Run or Prepare came before the Setup".to_owned());
        }
        None => return Ok(()),
    };
    check_setup(&setup)?;
    sys::become_user(setup.supervisor_uid, setup.supervisor_gid, sys::SUPERVISOR_CAPS).map_err(
        |e| format!("dropping to uid {}: {e} (does the sandbox have CAP_SETUID, CAP_SETGID and CAP_KILL?)", setup.supervisor_uid),
    )?;
    // Changing uids resets dumpability to the system's default: make sure it is off.
    sys::set_dumpable(false).map_err(|e| format!("making the supervisor not dumpable: {e}"))?;
    if sys::is_dumpable() {
        return Err("the supervisor is still dumpable".to_owned());
    }
    let signals = sys::child_signals().map_err(|e| format!("a signalfd: {e}"))?;
    job::clean(&setup, &signals).map_err(|why| format!("the fresh sandbox is not clean: {why}"))?;
    channel.send(&Report::Ready)?;
    let mut prepared = None;
    loop {
        let run = match channel.receive()? {
            Some(Request::Run(run)) => run,
            Some(Request::Prepare) => {
                if setup.warm.is_none() {
                    return Err("a Prepare, but the setup has no warm command".to_owned());
                }
                if prepared.is_some() {
                    return Err("a second Prepare for one job".to_owned());
                }
                // One that cannot start is only slower: the Run starts the job itself.
                match job::prepare(&setup) {
                    Ok(process) => prepared = Some(process),
                    Err(why) => eprintln!("kws-exec-supervisor: preparing the next job: {why}"),
                }
                continue;
            }
            Some(Request::Setup(_)) => return Err("a second Setup".to_owned()),
            None => return Ok(()),
        };
        let done = job::run(&setup, &signals, &run, channel, prepared.take())?;
        channel.send(&Report::Done(done))?;
        // Off the job's latency: its end is already told. A sandbox in doubt takes no more jobs.
        job::clean(&setup, &signals).map_err(|why| format!("the sandbox is not clean: {why}"))?;
        channel.send(&Report::Ready)?;
    }
}

/// Refuses a setup the guarantees above cannot hold under.
fn check_setup(setup: &Setup) -> Result<(), String> {
    let ids = [setup.job_uid, setup.job_gid, setup.supervisor_uid, setup.supervisor_gid];
    if ids.contains(&0) {
        return Err("neither the job nor the supervisor may run as root".to_owned());
    }
    if setup.job_uid == setup.supervisor_uid {
        return Err(format!("the job and the supervisor share uid {}", setup.job_uid));
    }
    let empty = |command: &Option<Vec<String>>| command.as_ref().is_some_and(Vec::is_empty);
    if setup.run.is_empty() || empty(&setup.compile) || empty(&setup.warm) {
        return Err("an empty command".to_owned());
    }
    if setup.compile.is_some() && setup.warm.is_some() {
        return Err("a warm command cannot follow a compile command".to_owned());
    }
    let paths = std::iter::once(&setup.work_dir).chain(&setup.writable);
    if let Some(path) = paths.clone().find(|p| !p.starts_with('/') || p.contains("/..")) {
        return Err(format!("{path:?} is not an absolute path without .."));
    }
    if !setup.writable.contains(&setup.work_dir) {
        return Err(format!("the work dir {} is not among the wiped paths", setup.work_dir));
    }
    let file = &setup.source_file;
    if file.is_empty() || file == "." || file == ".." || file.contains('/') {
        return Err(format!("source file {file:?} is not a plain file name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> Setup {
        Setup {
            job_uid: 1000,
            job_gid: 1000,
            supervisor_uid: 65534,
            supervisor_gid: 65534,
            work_dir: "/workspace".into(),
            source_file: "main.py".into(),
            compile: None,
            run: vec!["python3".into()],
            warm: None,
            env: Vec::new(),
            writable: vec!["/workspace".into(), "/tmp".into()],
            kill_limit_ms: 1,
            wipe_limit_ms: 1,
        }
    }

    #[test]
    fn setups_that_would_break_a_guarantee_are_refused_by_name() {
        check_setup(&setup()).expect("the engine's setup is fine");
        type Change = fn(&mut Setup);
        let cases: [(Change, &str); 11] = [
            (|s| s.job_uid = 0, "root"),
            (|s| s.supervisor_gid = 0, "root"),
            (|s| s.supervisor_uid = 1000, "share uid 1000"),
            (|s| s.run.clear(), "empty command"),
            (|s| s.compile = Some(Vec::new()), "empty command"),
            (|s| s.warm = Some(Vec::new()), "empty command"),
            (
                |s| {
                    s.compile = Some(vec!["cc".into()]);
                    s.warm = Some(vec!["python3".into()]);
                },
                "warm command cannot follow",
            ),
            (|s| s.writable.push("tmp".into()), "\"tmp\""),
            (|s| s.writable.push("/tmp/../etc".into()), "/tmp/../etc"),
            (|s| s.writable.retain(|w| w != "/workspace"), "not among the wiped"),
            (|s| s.source_file = "../x".into(), "plain file name"),
        ];
        for (change, named) in cases {
            let mut bad = setup();
            change(&mut bad);
            let err = check_setup(&bad).expect_err("refused");
            assert!(err.contains(named), "{err}");
        }
    }
}
