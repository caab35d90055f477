//! The system calls the supervisor makes, each behind a small safe function.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    time::Duration,
};

/// `Err(last OS error)` for a negative return.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// A pipe, both ends close-on-exec: `(read, write)`.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both are fresh descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Makes reads and writes on `fd` return `WouldBlock` instead of waiting.
pub(crate) fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor this process owns, with integer arguments only.
    let flags = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

/// Reads what is there (`Ok(0)` at end of file).
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes of writing.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Writes what fits without waiting (for a non-blocking descriptor).
pub(crate) fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes of reading.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Writes all of `buf`, waiting as needed, retrying interrupted writes.
pub(crate) fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits until one of `fds` is ready or `timeout` passes; returns how many are ready (0 after
/// the timeout or an interruption).
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<usize> {
    let ms = libc::c_int::try_from(timeout.as_millis().saturating_add(1)).unwrap_or(i32::MAX);
    let len = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
    // SAFETY: `fds` is a valid array of `len` pollfd structures.
    match check(unsafe { libc::poll(fds.as_mut_ptr(), len, ms) }) {
        Ok(n) => Ok(usize::try_from(n).unwrap_or(0)),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// A pollfd entry waiting for `events` on `fd`.
pub(crate) fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd { fd, events, revents: 0 }
}

/// Blocks SIGCHLD and returns a non-blocking signalfd that becomes readable when a child
/// changes state; SIGPIPE is ignored (a write to a closed pipe fails with EPIPE instead).
pub(crate) fn child_signals() -> io::Result<OwnedFd> {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; the null old set is allowed.
    unsafe {
        libc::sigemptyset(&raw mut set);
        libc::sigaddset(&raw mut set, libc::SIGCHLD);
        check(libc::sigprocmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut()))?;
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    // SAFETY: `set` is a valid sigset_t.
    let fd = check(unsafe {
        libc::signalfd(-1, &raw const set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC)
    })?;
    // SAFETY: signalfd returned a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Empties the signalfd (its readiness is only a wake-up: `waitpid` says what happened).
pub(crate) fn drain_signals(fd: &OwnedFd) {
    let mut info = [0u8; 128 * 8];
    while read(fd.as_raw_fd(), &mut info).is_ok_and(|n| n > 0) {}
}

/// Undoes `child_signals` in a new child: nothing blocked, SIGPIPE back to its default.
pub(crate) fn reset_signals() {
    // SAFETY: as in `child_signals`, with an empty set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &raw const set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// What `fork` returned.
pub(crate) enum Forked {
    /// In the parent, with the child's pid.
    Parent(libc::pid_t),
    /// In the child.
    Child,
}

/// Forks. The supervisor has one thread, so the child may do anything the parent could.
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: the process is single-threaded (no lock can be held by another thread).
    match check(unsafe { libc::fork() })? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// Ends a forked child at once, without running the parent's destructors or flushing its
/// buffers twice.
pub(crate) fn exit_child(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no shared state.
    unsafe { libc::_exit(code) }
}

/// A reaped child and its wait status.
pub(crate) type Reaped = (libc::pid_t, libc::c_int);

/// Reaps one child that has ended: `Ok(Some)` for a reaped one, `Ok(None)` when children
/// remain but none has ended (or, with `wait`, never: it waits), `Err(ECHILD)` when there are
/// none.
pub(crate) fn reap(wait: bool) -> io::Result<Option<Reaped>> {
    let mut status = 0;
    let flags = if wait { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: `status` is valid for writing.
        match check(unsafe { libc::waitpid(-1, &raw mut status, flags) }) {
            Ok(0) => return Ok(None),
            Ok(pid) => return Ok(Some((pid, status))),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Whether `err` says there is no child left.
pub(crate) fn no_children(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::ECHILD)
}

/// The exit code or the signal of a wait status.
pub(crate) fn decode_status(status: libc::c_int) -> Result<i32, i32> {
    if libc::WIFEXITED(status) {
        Ok(libc::WEXITSTATUS(status))
    } else {
        Err(libc::WTERMSIG(status))
    }
}

/// SIGKILLs every process this one may signal, except itself: as process 1 of its pid
/// namespace with CAP_KILL, every other process of the sandbox.
pub(crate) fn kill_all() -> io::Result<()> {
    // SAFETY: kill with integer arguments.
    match check(unsafe { libc::kill(-1, libc::SIGKILL) }) {
        Err(e) if e.raw_os_error() != Some(libc::ESRCH) => Err(e),
        _ => Ok(()),
    }
}

/// SIGKILLs one process.
pub(crate) fn kill(pid: libc::pid_t) {
    // SAFETY: kill with integer arguments; the pid is an unreaped child, so it is not reused.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Makes this process not dumpable: its `/proc/self` files belong to root and `ptrace` access
/// checks fail for every other uid, so `/proc/1/mem`, `/proc/1/environ` and `/proc/1/fd` stay
/// closed to jobs.
pub(crate) fn set_dumpable(dumpable: bool) -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(dumpable), 0, 0, 0) })?;
    Ok(())
}

/// Whether this process is dumpable.
pub(crate) fn is_dumpable() -> bool {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) == 1 }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_VERSION_3: u32 = 0x2008_0522;
/// Capability numbers (linux/capability.h).
const CAP_KILL: u32 = 5;
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;

/// The capabilities the supervisor keeps: signal every job process, and change to the job's
/// uid and gid in its children.
pub(crate) const SUPERVISOR_CAPS: u32 = (1 << CAP_KILL) | (1 << CAP_SETGID) | (1 << CAP_SETUID);

/// Sets the effective and permitted capabilities to `caps` (the first 32; the others and the
/// inheritable ones to none).
fn set_caps(caps: u32) -> io::Result<()> {
    let header = CapHeader { version: CAP_VERSION_3, pid: 0 };
    let data = [CapData { effective: caps, permitted: caps, inheritable: 0 }, CapData::default()];
    // SAFETY: capset reads one header and two data structures of the v3 layout.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &raw const header, data.as_ptr()) };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// The effective, permitted and inheritable capabilities, all 64 bits, or'ed together.
fn current_caps() -> io::Result<u64> {
    let header = CapHeader { version: CAP_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two data structures of the v3 layout.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &raw const header, data.as_mut_ptr()) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let half = |d: &CapData| u64::from(d.effective | d.permitted | d.inheritable);
    Ok(half(&data[0]) | (half(&data[1]) << 32))
}

/// Changes every uid and gid to `uid`/`gid` with no supplementary groups, and leaves the
/// capabilities `caps` (none for a job). Checks the result: `Err` when any id or capability is
/// not what was asked.
pub(crate) fn become_user(uid: u32, gid: u32, caps: u32) -> io::Result<()> {
    // SAFETY: prctl, setgroups (an empty list), setresgid and setresuid with integer arguments.
    unsafe {
        check(libc::prctl(libc::PR_SET_KEEPCAPS, libc::c_ulong::from(caps != 0), 0, 0, 0))?;
        check(libc::setgroups(0, std::ptr::null()))?;
        check(libc::setresgid(gid, gid, gid))?;
        check(libc::setresuid(uid, uid, uid))?;
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0))?;
    }
    // Leaving uid 0 cleared the effective set; from one non-root uid to another clears nothing,
    // so the capabilities are set explicitly either way.
    set_caps(caps)?;
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: the three pointers are valid for writing.
    check(unsafe { libc::getresuid(&raw mut r, &raw mut e, &raw mut s) })?;
    let (mut rg, mut eg, mut sg) = (0, 0, 0);
    // SAFETY: as above.
    check(unsafe { libc::getresgid(&raw mut rg, &raw mut eg, &raw mut sg) })?;
    // SAFETY: a null list with size 0 asks only for the count.
    let groups = check(unsafe { libc::getgroups(0, std::ptr::null_mut()) })?;
    let held = current_caps()?;
    if [r, e, s] != [uid; 3] || [rg, eg, sg] != [gid; 3] || groups != 0 || held != u64::from(caps) {
        return Err(io::Error::other(format!(
            "after changing to {uid}:{gid}: uids {r}/{e}/{s}, gids {rg}/{eg}/{sg}, {groups} \
             groups, capabilities {held:#x} (wanted {caps:#x})"
        )));
    }
    Ok(())
}

/// Sets no-new-privileges (Docker already does; this makes sure for every job process).
pub(crate) fn no_new_privileges() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
    Ok(())
}

/// Starts a new session (the job cannot then send SIGCONT to the supervisor's session, nor
/// share its process group).
pub(crate) fn new_session() -> io::Result<()> {
    // SAFETY: setsid has no arguments.
    check(unsafe { libc::setsid() })?;
    Ok(())
}

/// Makes `from` the descriptor `to` (both stay open).
pub(crate) fn dup_to(from: &OwnedFd, to: RawFd) -> io::Result<()> {
    // SAFETY: dup2 with two descriptor numbers; `from` is open.
    check(unsafe { libc::dup2(from.as_raw_fd(), to) })?;
    Ok(())
}

/// Closes every descriptor from `first` up.
pub(crate) fn close_from(first: libc::c_uint) -> io::Result<()> {
    // SAFETY: close_range with integer arguments; the caller owns nothing from `first` up any
    // more.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, 0) };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Replaces this process with `argv[0]`, found on the `PATH` of `env` unless it holds a `/`.
/// Returns only on failure.
pub(crate) fn exec(argv: &[CString], env: &[CString]) -> io::Error {
    let Some(program) = argv.first() else {
        return io::Error::other("an empty command");
    };
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    let name = program.as_bytes();
    let candidates: Vec<CString> = if name.contains(&b'/') {
        vec![program.clone()]
    } else {
        let path = env
            .iter()
            .find_map(|e| e.as_bytes().strip_prefix(b"PATH="))
            .unwrap_or(b"/usr/bin:/bin");
        path.split(|b| *b == b':')
            .filter(|dir| !dir.is_empty())
            .filter_map(|dir| CString::new([dir, b"/", name].concat()).ok())
            .collect()
    };
    let mut last = io::Error::from_raw_os_error(libc::ENOENT);
    for candidate in candidates {
        // SAFETY: both arrays are null-terminated arrays of valid C strings that outlive the
        // call.
        unsafe { libc::execve(candidate.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ENOENT) {
            last = err;
        }
    }
    last
}
