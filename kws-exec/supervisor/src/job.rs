//! One job: its process started as the job's user (at the `Run`, or ahead of it by the warm
//! command), its output streamed under the cap, its wall time enforced, then every process of
//! the sandbox killed and reaped before its end is told.

use std::{
    ffi::CString,
    fs, io,
    os::fd::{AsRawFd, OwnedFd},
    time::{Duration, Instant},
};

use kws_exec_supervisor::protocol::{Done, End, Report, Run, Setup};

use crate::{
    channel::Channel,
    sys::{self, Forked},
    wipe,
};

/// What the job's process is started with, prepared before the fork.
struct Command {
    run: Vec<CString>,
    compile: Option<Vec<CString>>,
    warm: Option<Vec<CString>>,
    env: Vec<CString>,
    work_dir: CString,
    source_file: CString,
}

/// Strings of the setup as C strings; `Err` names one that holds a NUL.
fn c_strings(strings: &[String]) -> Result<Vec<CString>, String> {
    strings
        .iter()
        .map(|s| CString::new(s.as_bytes()).map_err(|_| format!("{s:?} holds a NUL byte")))
        .collect()
}

impl Command {
    fn new(setup: &Setup) -> Result<Self, String> {
        let one = |s: &String| c_strings(std::slice::from_ref(s)).map(|mut v| v.remove(0));
        Ok(Self {
            run: c_strings(&setup.run)?,
            compile: setup.compile.as_deref().map(c_strings).transpose()?,
            warm: setup.warm.as_deref().map(c_strings).transpose()?,
            env: c_strings(&setup.env)?,
            work_dir: one(&setup.work_dir)?,
            source_file: one(&setup.source_file)?,
        })
    }
}

/// The job's pipes, from the supervisor's side: its stdio, and for a prepared process the
/// pipe its source goes down (its descriptor 3).
struct JobPipes {
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    source: Option<OwnedFd>,
}

/// How the job's process starts.
#[derive(Clone, Copy)]
enum Start<'a> {
    /// At the `Run`: it writes this source and execs the run command.
    Now(&'a [u8]),
    /// Ahead of the `Run`: it execs the warm command, which waits for the source on
    /// descriptor 3.
    Warm,
}

/// A job's process started ahead of its `Run` by the warm command, waiting for its source.
pub(crate) struct Prepared {
    pid: libc::pid_t,
    pipes: JobPipes,
}

/// Starts the next job's process from the warm command (the sandbox is clean: its process is
/// the only one besides the supervisor). `Err` when it cannot start; the `Run` then starts
/// the job as usual.
pub(crate) fn prepare(setup: &Setup) -> Result<Prepared, String> {
    let command = Command::new(setup)?;
    if command.warm.is_none() {
        return Err("the setup has no warm command".to_owned());
    }
    let (pid, pipes) = spawn(setup, &command, Start::Warm)?;
    Ok(Prepared { pid, pipes })
}

/// Forks the job's process; returns its pid and the supervisor's ends of its pipes.
fn spawn(
    setup: &Setup,
    command: &Command,
    start: Start<'_>,
) -> Result<(libc::pid_t, JobPipes), String> {
    let (pipes, child_ends) = job_pipes(matches!(start, Start::Warm))
        .map_err(|e| format!("making the job's pipes: {e}"))?;
    match sys::fork() {
        Ok(Forked::Child) => start_job(setup, command, start, child_ends),
        Ok(Forked::Parent(pid)) => Ok((pid, pipes)),
        Err(e) => Err(format!("starting the job: {e}")),
    }
}

/// The output a job may still write.
struct Budget(u64);

/// Where the job's output goes: the channel, within the budget.
struct Output<'a> {
    channel: &'a mut Channel,
    budget: Budget,
}

impl Output<'_> {
    /// Reports `bytes` as stdout or stderr; `Ok(false)` when they did not all fit (what fit was
    /// reported).
    fn forward(&mut self, stderr: bool, bytes: &[u8]) -> Result<bool, String> {
        let fits = usize::try_from(self.budget.0).unwrap_or(usize::MAX).min(bytes.len());
        self.budget.0 -= fits as u64;
        if fits > 0 {
            let chunk = bytes[..fits].to_vec();
            let report = if stderr { Report::Stderr(chunk) } else { Report::Stdout(chunk) };
            self.channel.send(&report)?;
        }
        Ok(fits == bytes.len())
    }

    /// Reads what `pipe` holds and forwards it; closes the pipe at its end. `Ok(false)` when
    /// the cap was passed.
    fn pump(&mut self, pipe: &mut Option<OwnedFd>, stderr: bool) -> Result<bool, String> {
        let Some(fd) = pipe.as_ref().map(AsRawFd::as_raw_fd) else { return Ok(true) };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match sys::read(fd, &mut buf) {
                Ok(0) => {
                    *pipe = None;
                    return Ok(true);
                }
                Ok(n) => {
                    if !self.forward(stderr, &buf[..n])? {
                        return Ok(false);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) => return Err(format!("reading the job's output: {e}")),
            }
        }
    }
}

/// Runs one job to its end and reports its output on the way; returns how it ended, once every
/// process of it is reaped. The job's process is `prepared` (it gets the source down its pipe)
/// or started here. `Err` when that could not be done, or the channel failed.
pub(crate) fn run(
    setup: &Setup,
    signals: &OwnedFd,
    job: &Run,
    channel: &mut Channel,
    prepared: Option<Prepared>,
) -> Result<Done, String> {
    let oom_before = oom_kills();
    let started = Instant::now();
    let (main, mut pipes, mut source) = match prepared {
        Some(Prepared { pid, pipes }) => (pid, pipes, &job.source[..]),
        None => {
            let spawned =
                Command::new(setup).and_then(|c| spawn(setup, &c, Start::Now(&job.source)));
            match spawned {
                Ok((pid, pipes)) => (pid, pipes, &[][..]),
                Err(why) => return Ok(not_started(why)),
            }
        }
    };
    let deadline = started + Duration::from_millis(job.wall_ms);
    let mut output = Output { channel, budget: Budget(job.output_bytes) };
    let mut stdin: &[u8] = &job.stdin;
    if stdin.is_empty() {
        pipes.stdin = None;
    }
    let mut main_status = None;
    let mut limit = None;
    while main_status.is_none() && limit.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            limit = Some(End::TimedOut);
            break;
        }
        let raw = |fd: &Option<OwnedFd>| fd.as_ref().map_or(-1, AsRawFd::as_raw_fd);
        let mut fds = [
            sys::pollfd(raw(&pipes.stdout), libc::POLLIN),
            sys::pollfd(raw(&pipes.stderr), libc::POLLIN),
            sys::pollfd(raw(&pipes.stdin), libc::POLLOUT),
            sys::pollfd(signals.as_raw_fd(), libc::POLLIN),
            sys::pollfd(raw(&pipes.source), libc::POLLOUT),
        ];
        sys::poll(&mut fds, left).map_err(|e| format!("waiting for the job: {e}"))?;
        if fds[3].revents != 0 {
            sys::drain_signals(signals);
            main_status = reap_ready(main, Instant::now());
        }
        for (index, stderr) in [(0, false), (1, true)] {
            if fds[index].revents != 0 {
                let pipe = if stderr { &mut pipes.stderr } else { &mut pipes.stdout };
                if !output.pump(pipe, stderr)? {
                    limit = Some(End::OutputLimit);
                }
            }
        }
        if fds[2].revents != 0 {
            feed(&mut pipes.stdin, &mut stdin);
        }
        if fds[4].revents != 0 {
            feed(&mut pipes.source, &mut source);
        }
    }
    let ended = main_status.map_or_else(Instant::now, |(_, at)| at);
    // Kill first: from here on nothing of the job runs, so what the pipes hold is all there is.
    pipes.stdin = None;
    pipes.source = None;
    let killed = kill_and_reap(Duration::from_millis(setup.kill_limit_ms), signals, main)?;
    if let Some(status) = killed {
        main_status = main_status.or(Some((status, ended)));
    }
    for stderr in [false, true] {
        let pipe = if stderr { &mut pipes.stderr } else { &mut pipes.stdout };
        if limit.is_none() && !output.pump(pipe, stderr)? {
            limit = Some(End::OutputLimit);
        }
    }
    let end = limit.unwrap_or_else(|| match main_status.map(|(s, _)| sys::decode_status(s)) {
        Some(Ok(code)) => End::Exited(code),
        Some(Err(signal)) => {
            let oom = signal == libc::SIGKILL && oom_kills() > oom_before;
            End::Signaled { signal, oom }
        }
        None => End::NotStarted("the job's process vanished".to_owned()),
    });
    let wall_us = u64::try_from(ended.duration_since(started).as_micros()).unwrap_or(u64::MAX);
    Ok(Done { end, wall_us })
}

/// A job that could not start (no process of it ran).
fn not_started(why: String) -> Done {
    Done { end: End::NotStarted(why), wall_us: 0 }
}

/// Wipes the writable paths and checks that no process but the supervisor is left.
pub(crate) fn clean(setup: &Setup, signals: &OwnedFd) -> Result<(), String> {
    let limit = Duration::from_millis(setup.wipe_limit_ms);
    wipe::wipe(setup.job_uid, setup.job_gid, &setup.writable, limit, signals)?;
    match wipe::others_in_proc() {
        Ok(others) if others.is_empty() => Ok(()),
        Ok(others) => Err(format!("processes {} are in the sandbox", others.join(", "))),
        Err(e) => Err(format!("listing /proc: {e}")),
    }
}

/// Writes what the job's stdin pipe takes; closes it when all is written or the job closed it.
fn feed(pipe: &mut Option<OwnedFd>, pending: &mut &[u8]) {
    let Some(fd) = pipe.as_ref().map(AsRawFd::as_raw_fd) else { return };
    match sys::write(fd, pending) {
        Ok(n) => *pending = &pending[n..],
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
            return;
        }
        // The job closed its stdin (EPIPE): the rest is not for anyone.
        Err(_) => *pending = &[],
    }
    if pending.is_empty() {
        *pipe = None;
    }
}

/// Reaps every child that has ended; returns the main process's status if it was among them.
fn reap_ready(main: libc::pid_t, now: Instant) -> Option<(libc::c_int, Instant)> {
    let mut found = None;
    while let Ok(Some((pid, status))) = sys::reap(false) {
        if pid == main {
            found = Some((status, now));
        }
    }
    found
}

/// SIGKILLs every process of the sandbox but the supervisor, and reaps them all (orphans come
/// to process 1), until `/proc` shows no other process. Returns the main process's status if it
/// was reaped here. `Err` when some are still there after `limit`.
fn kill_and_reap(
    limit: Duration,
    signals: &OwnedFd,
    main: libc::pid_t,
) -> Result<Option<libc::c_int>, String> {
    let deadline = Instant::now() + limit;
    let mut main_status = None;
    loop {
        sys::kill_all().map_err(|e| format!("killing the job's processes: {e}"))?;
        let none_left = loop {
            match sys::reap(false) {
                Ok(Some((pid, status))) => {
                    if pid == main {
                        main_status = Some(status);
                    }
                }
                Ok(None) => break false,
                Err(e) if sys::no_children(&e) => break true,
                Err(e) => return Err(format!("reaping: {e}")),
            }
        };
        if none_left && wipe::others_in_proc().is_ok_and(|o| o.is_empty()) {
            return Ok(main_status);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let others = wipe::others_in_proc().unwrap_or_default();
            return Err(format!("processes {} did not die within {limit:?}", others.join(", ")));
        }
        let mut fds = [sys::pollfd(signals.as_raw_fd(), libc::POLLIN)];
        let _ = sys::poll(&mut fds, left.min(Duration::from_millis(5)));
        sys::drain_signals(signals);
    }
}

/// The job's stdin, stdout and stderr pipes, and with `source` the source's: the supervisor's
/// ends (non-blocking), and the job's ends in descriptor order.
fn job_pipes(source: bool) -> io::Result<(JobPipes, Vec<OwnedFd>)> {
    let (stdin_r, stdin_w) = sys::pipe()?;
    let (stdout_r, stdout_w) = sys::pipe()?;
    let (stderr_r, stderr_w) = sys::pipe()?;
    let (source_w, source_r) = match source {
        true => sys::pipe().map(|(r, w)| (Some(w), Some(r)))?,
        false => (None, None),
    };
    for ours in
        [Some(&stdin_w), Some(&stdout_r), Some(&stderr_r), source_w.as_ref()].into_iter().flatten()
    {
        sys::set_nonblocking(ours)?;
    }
    let pipes = JobPipes {
        stdin: Some(stdin_w),
        stdout: Some(stdout_r),
        stderr: Some(stderr_r),
        source: source_w,
    };
    let ends = [stdin_r, stdout_w, stderr_w].into_iter().chain(source_r).collect();
    Ok((pipes, ends))
}

/// In the forked child: become the job and exec it. Never returns; a failure is written to the
/// job's stderr and ends it with code 125.
fn start_job(setup: &Setup, command: &Command, start: Start<'_>, ends: Vec<OwnedFd>) -> ! {
    let why = match become_job(setup, command, start, &ends) {
        Ok(never) => match never {},
        Err(why) => why,
    };
    let _ = sys::write_all(2, format!("kws-exec-supervisor: {why}\n").as_bytes());
    sys::exit_child(125)
}

/// The child's steps; returns only on failure.
fn become_job(
    setup: &Setup,
    command: &Command,
    start: Start<'_>,
    ends: &[OwnedFd],
) -> Result<std::convert::Infallible, String> {
    sys::new_session().map_err(|e| format!("setsid: {e}"))?;
    // Every end is above 2 (0 to 2 are the supervisor's channel, still open here), so the
    // only target that can be an end's own number is 3, the last one written: no dup2
    // overwrites an end before it is moved.
    let mut count = 0;
    for (fd, end) in (0..).zip(ends) {
        sys::dup_to(end, fd).map_err(|e| format!("dup2: {e}"))?;
        count += 1;
    }
    sys::close_from(count).map_err(|e| format!("closing descriptors: {e}"))?;
    sys::reset_signals();
    // The job, not the supervisor, is what the out-of-memory killer takes first. The file is
    // writable only while this process is dumpable (becoming the job's user makes it not
    // dumpable again until the exec).
    sys::set_dumpable(true).map_err(|e| format!("dumpable: {e}"))?;
    fs::write("/proc/self/oom_score_adj", "1000").map_err(|e| format!("oom_score_adj: {e}"))?;
    sys::become_user(setup.job_uid, setup.job_gid, 0).map_err(|e| e.to_string())?;
    sys::no_new_privileges().map_err(|e| format!("no_new_privs: {e}"))?;
    // SAFETY: chdir with a valid C string.
    if unsafe { libc::chdir(command.work_dir.as_ptr()) } != 0 {
        return Err(format!("chdir {}: {}", setup.work_dir, io::Error::last_os_error()));
    }
    let source = match (start, &command.warm) {
        (Start::Warm, Some(warm)) => {
            let err = sys::exec(warm, &command.env);
            return Err(format!("starting {:?}: {err}", setup.warm));
        }
        (Start::Warm, None) => return Err("no warm command".to_owned()),
        (Start::Now(source), _) => source,
    };
    write_source(&command.source_file, source)
        .map_err(|e| format!("writing {}: {e}", setup.source_file))?;
    if let Some(compile) = &command.compile {
        compile_first(compile, &command.env)?;
    }
    Err(format!("starting {:?}: {}", setup.run, sys::exec(&command.run, &command.env)))
}

/// Creates the source file (it must not exist: the sandbox was wiped) and writes it.
fn write_source(name: &CString, source: &[u8]) -> io::Result<()> {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: open with a valid C string and integer arguments.
    let fd = unsafe { libc::open(name.as_ptr(), flags, 0o644) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open returned a fresh descriptor.
    let file = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    sys::write_all(file.as_raw_fd(), source)
}

/// Runs the compile command with an empty stdin and waits; a failure ends the job with its
/// exit code.
fn compile_first(compile: &[CString], env: &[CString]) -> Result<(), String> {
    let pid = match sys::fork().map_err(|e| format!("starting the compiler: {e}"))? {
        Forked::Child => {
            let null = fs::File::open("/dev/null").map(OwnedFd::from);
            let err = match null.and_then(|null| sys::dup_to(&null, 0)) {
                Ok(()) => sys::exec(compile, env),
                Err(e) => e,
            };
            let _ =
                sys::write_all(2, format!("kws-exec-supervisor: compiling: {err}\n").as_bytes());
            sys::exit_child(127)
        }
        Forked::Parent(pid) => pid,
    };
    loop {
        match sys::reap(true) {
            Ok(Some((reaped, status))) if reaped == pid => {
                return match sys::decode_status(status) {
                    Ok(0) => Ok(()),
                    Ok(code) => sys::exit_child(code),
                    Err(signal) => sys::exit_child(128 + signal),
                };
            }
            Ok(_) => {}
            Err(e) => return Err(format!("waiting for the compiler: {e}")),
        }
    }
}

/// Out-of-memory kills in the sandbox's memory cgroup so far (cgroup v1 or v2), 0 when neither
/// file can be read.
fn oom_kills() -> u64 {
    ["/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"]
        .iter()
        .find_map(|path| {
            let text = fs::read_to_string(path).ok()?;
            text.lines().find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}
