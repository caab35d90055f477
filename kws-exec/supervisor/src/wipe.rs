//! Wiping a sandbox between jobs: every writable path emptied, every System V IPC object
//! removed, then checked. It runs in a child under the job's uid (the job's files are its own,
//! even in sticky directories), after every job process is reaped, so nothing can race it.

use std::{
    fs, io,
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::fs::{MetadataExt, PermissionsExt},
    },
    path::Path,
    time::{Duration, Instant},
};

use crate::sys::{self, Forked};

/// Deeper trees are not followed: the sandbox then counts as dirty and is retired.
const MAX_DEPTH: usize = 64;

/// Wipes and checks the sandbox in a child running as `uid`:`gid`, waiting at most `limit`.
/// `Err` says what is left or what failed.
pub(crate) fn wipe(
    uid: u32,
    gid: u32,
    writable: &[String],
    limit: Duration,
    signals: &OwnedFd,
) -> Result<(), String> {
    let (report_r, report_w) = sys::pipe().map_err(|e| format!("a pipe for the wipe: {e}"))?;
    let child = match sys::fork().map_err(|e| format!("starting the wipe: {e}"))? {
        Forked::Child => {
            drop(report_r);
            let code = match wipe_as(uid, gid, writable) {
                Ok(()) => 0,
                Err(why) => {
                    let _ = sys::write_all(report_w.as_raw_fd(), why.as_bytes());
                    1
                }
            };
            sys::exit_child(code)
        }
        Forked::Parent(pid) => pid,
    };
    drop(report_w);
    let deadline = Instant::now() + limit;
    let mut said = Vec::new();
    let mut status = None;
    let mut report_open = true;
    while status.is_none() || report_open {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            sys::kill(child);
            return Err(format!("wiping took longer than {limit:?}"));
        }
        let mut fds = [
            sys::pollfd(if report_open { report_r.as_raw_fd() } else { -1 }, libc::POLLIN),
            sys::pollfd(signals.as_raw_fd(), libc::POLLIN),
        ];
        sys::poll(&mut fds, left).map_err(|e| format!("waiting for the wipe: {e}"))?;
        if fds[0].revents != 0 {
            let mut buf = [0u8; 4096];
            match sys::read(report_r.as_raw_fd(), &mut buf) {
                Ok(0) => report_open = false,
                Ok(n) if said.len() < 4096 => said.extend_from_slice(&buf[..n]),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading the wipe's report: {e}")),
            }
        }
        if fds[1].revents != 0 {
            sys::drain_signals(signals);
        }
        while status.is_none() {
            match sys::reap(false) {
                Ok(Some((pid, code))) if pid == child => status = Some(code),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return Err(format!("reaping the wipe: {e}")),
            }
        }
    }
    match status.map(sys::decode_status) {
        Some(Ok(0)) => Ok(()),
        Some(Ok(_)) => Err(String::from_utf8_lossy(&said).into_owned()),
        Some(Err(signal)) => Err(format!("the wipe was killed by signal {signal}")),
        None => Err("the wipe vanished".to_owned()),
    }
}

/// In the child: become the job's user, empty every writable path, remove System V IPC
/// objects, then check.
fn wipe_as(uid: u32, gid: u32, writable: &[String]) -> Result<(), String> {
    sys::become_user(uid, gid, 0).map_err(|e| format!("becoming the job's user: {e}"))?;
    for dir in writable {
        let dir = Path::new(dir);
        if dir.is_dir() {
            empty(dir, 0).map_err(|e| format!("wiping {}: {e}", dir.display()))?;
        }
    }
    for dir in writable {
        if let Some(entry) = fs::read_dir(dir).ok().and_then(|mut d| d.next()) {
            let name = entry.map(|e| e.path().display().to_string()).unwrap_or_default();
            return Err(format!("left in {dir}: {name}"));
        }
    }
    remove_ipc_objects()
}

/// Removes everything inside `dir`, never following a symbolic link: entries are typed with
/// `lstat`, and only directories (checked so, and owned by this uid) are made readable and
/// writable before they are emptied.
fn empty(dir: &Path, depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other(format!("nested deeper than {MAX_DEPTH}")));
    }
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let meta = fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            // Path-based calls are safe here: no job process is alive, so nothing can swap a
            // checked directory for a link before it is used.
            if meta.uid() == own_uid() && meta.permissions().mode() & 0o700 != 0o700 {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o700))?;
            }
            empty(&path, depth + 1)?;
            fs::remove_dir(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// This process's uid.
fn own_uid() -> libc::uid_t {
    // SAFETY: getuid cannot fail and has no arguments.
    unsafe { libc::getuid() }
}

/// Removes one System V IPC object by its id.
type RemoveIpc = fn(libc::c_int) -> libc::c_int;

/// Removes every System V shared memory segment, semaphore set and message queue this uid may
/// remove (the job's: the sandbox has its own IPC namespace), then fails if any is left.
fn remove_ipc_objects() -> Result<(), String> {
    let kinds: [(&str, RemoveIpc); 3] = [
        // SAFETY (all three): IPC_RMID with a null buffer takes integer arguments only.
        ("shm", |id| unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) }),
        ("sem", |id| unsafe { libc::semctl(id, 0, libc::IPC_RMID) }),
        ("msg", |id| unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) }),
    ];
    for (kind, remove) in kinds {
        let table = format!("/proc/sysvipc/{kind}");
        for id in ipc_ids(&table) {
            remove(id);
        }
        if let Some(id) = ipc_ids(&table).first() {
            return Err(format!("System V {kind} object {id} is left"));
        }
    }
    Ok(())
}

/// The ids in a `/proc/sysvipc` table (its second column; the first line is the header).
fn ipc_ids(table: &str) -> Vec<libc::c_int> {
    let text = fs::read_to_string(table).unwrap_or_default();
    text.lines().skip(1).filter_map(|line| line.split_whitespace().nth(1)?.parse().ok()).collect()
}

/// Whether no process but this one (process 1) is in the sandbox's pid namespace, as `/proc`
/// lists it (which also shows a process that entered from outside, like a `docker exec`).
pub(crate) fn others_in_proc() -> io::Result<Vec<String>> {
    let mut others = Vec::new();
    for entry in fs::read_dir("/proc")? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name != "1" && !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
            others.push(name);
        }
    }
    Ok(others)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_with_locked_directories_and_links_is_emptied_and_link_targets_are_kept() {
        let root = std::env::temp_dir().join(format!("kws-wipe-{}", std::process::id()));
        let outside = root.join("outside");
        let dir = root.join("dir");
        fs::create_dir_all(dir.join("locked/deep")).expect("mkdir");
        fs::create_dir_all(&outside).expect("mkdir");
        fs::write(outside.join("keep"), "x").expect("write");
        fs::write(dir.join("locked/deep/f"), "x").expect("write");
        fs::write(dir.join(".hidden"), "x").expect("write");
        std::os::unix::fs::symlink(&outside, dir.join("link")).expect("symlink");
        for locked in ["locked/deep", "locked"] {
            fs::set_permissions(dir.join(locked), fs::Permissions::from_mode(0o000))
                .expect("chmod");
        }
        empty(&dir, 0).expect("emptied");
        assert_eq!(fs::read_dir(&dir).expect("list").count(), 0);
        assert!(outside.join("keep").exists(), "a link's target is never touched");
        fs::remove_dir_all(&root).expect("cleanup");
    }

    #[test]
    fn too_deep_a_tree_is_an_error() {
        let root = std::env::temp_dir().join(format!("kws-wipe-deep-{}", std::process::id()));
        let mut deep = root.clone();
        for _ in 0..=MAX_DEPTH + 1 {
            deep.push("d");
        }
        fs::create_dir_all(&deep).expect("mkdir");
        assert!(empty(&root, 0).is_err());
        fs::remove_dir_all(&root).expect("cleanup");
    }
}
