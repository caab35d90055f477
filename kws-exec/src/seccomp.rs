//! The sandboxes' own seccomp profile: an allowlist for the engine's native architecture only.
//!
//! Why not Docker's default profile: runc compiles a container's profile again for every
//! `docker exec`, and the default one lists every syscall for three architectures (x86_64,
//! x86, x32 on an x86_64 host). Compiling it was the largest single CPU cost of a job (about
//! 8 ms of 36 ms of runc's work per exec, measured). This profile names each syscall once, for
//! the native architecture only, so 32-bit syscalls are refused outright, and it is stricter
//! than the default: no `ptrace`, `process_vm_*`, `personality`, `modify_ldt`, NUMA policy,
//! `io_uring` or `kcmp`, on top of everything that needs a capability the sandbox lacks
//! anyway (mounts, modules, keyrings, namespaces, clocks, BPF, perf).

use serde_json::{Value, json};

/// `clone` flags that make a new namespace: refused (with them, a process could build a user
/// namespace of its own and gain capabilities inside it).
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;
/// `ENOSYS`: `clone3` cannot be filtered by its flags (they sit behind a pointer), so it is
/// "not implemented" and the C library falls back to `clone`.
const ENOSYS: u64 = 38;

/// Syscalls a sandboxed program may make, by name, in groups: files, memory, processes and
/// identity (without capabilities a process can only use the ids it has), signals (the
/// kernel's uid check decides whom a process may signal), clocks read (never set), waiting on
/// descriptors, sockets (the sandbox has only loopback), asynchronous I/O, IPC (private to the
/// sandbox's IPC namespace). Linux x86_64 names; runc skips names an architecture lacks. Everything else fails with `EPERM`, and syscalls newer than
/// the newest named here with `ENOSYS` (runc's rule), so C libraries fall back.
const ALLOWED: &str = "\
    read write open openat openat2 close close_range creat stat \
    fstat lstat newfstatat statx statfs fstatfs lseek pread64 pwrite64 \
    readv writev preadv pwritev preadv2 pwritev2 access faccessat \
    faccessat2 dup dup2 dup3 fcntl flock fsync fdatasync sync syncfs \
    sync_file_range truncate ftruncate fallocate fadvise64 readahead \
    getdents getdents64 getcwd chdir fchdir rename renameat renameat2 \
    mkdir mkdirat rmdir link linkat unlink unlinkat symlink \
    symlinkat readlink readlinkat chmod fchmod fchmodat chown fchown \
    lchown fchownat umask utime utimes utimensat futimesat mknod \
    mknodat sendfile splice tee vmsplice copy_file_range ioctl \
    setxattr lsetxattr fsetxattr getxattr lgetxattr fgetxattr listxattr \
    llistxattr flistxattr removexattr lremovexattr fremovexattr \
    inotify_init inotify_init1 inotify_add_watch inotify_rm_watch memfd_create \
    brk mmap munmap mremap mprotect msync mincore madvise mlock \
    mlock2 munlock mlockall munlockall remap_file_pages pkey_mprotect \
    pkey_alloc pkey_free membarrier \
    fork vfork execve execveat exit exit_group wait4 waitid \
    getpid getppid gettid getpgid setpgid getpgrp getsid setsid \
    getuid geteuid getgid getegid getresuid getresgid getgroups \
    setuid setgid setreuid setregid setresuid setresgid setfsuid \
    setfsgid setgroups capget capset prctl arch_prctl seccomp \
    set_tid_address set_robust_list get_robust_list rseq set_thread_area \
    get_thread_area futex futex_waitv uname sysinfo getrlimit setrlimit \
    prlimit64 getrusage times getpriority setpriority ioprio_get \
    ioprio_set sched_yield sched_getaffinity sched_setaffinity sched_getparam \
    sched_setparam sched_getscheduler sched_setscheduler sched_getattr \
    sched_setattr sched_get_priority_max sched_get_priority_min \
    sched_rr_get_interval getcpu getrandom \
    kill tkill tgkill rt_sigaction rt_sigprocmask rt_sigreturn \
    rt_sigpending rt_sigtimedwait rt_sigqueueinfo rt_tgsigqueueinfo \
    rt_sigsuspend sigaltstack pause signalfd signalfd4 pidfd_open \
    pidfd_send_signal restart_syscall \
    time gettimeofday clock_gettime clock_getres clock_nanosleep nanosleep \
    alarm getitimer setitimer timer_create timer_settime timer_gettime \
    timer_getoverrun timer_delete timerfd_create timerfd_settime timerfd_gettime \
    poll ppoll select pselect6 epoll_create epoll_create1 epoll_ctl \
    epoll_wait epoll_pwait epoll_pwait2 eventfd eventfd2 pipe pipe2 \
    socket socketpair bind listen accept accept4 connect shutdown \
    getsockname getpeername setsockopt getsockopt sendto recvfrom sendmsg \
    recvmsg sendmmsg recvmmsg io_setup io_destroy io_getevents \
    io_pgetevents io_submit io_cancel \
    shmget shmat shmdt shmctl semget semop semtimedop semctl msgget \
    msgsnd msgrcv msgctl mq_open mq_unlink mq_timedsend mq_timedreceive \
    mq_notify mq_getsetattr";

/// The seccomp architecture of a Docker engine's `Architecture` (`uname -m`), if this profile
/// knows it; for any other the sandbox keeps Docker's default profile.
pub(crate) fn native_arch(uname_machine: &str) -> Option<&'static str> {
    match uname_machine {
        "x86_64" => Some("SCMP_ARCH_X86_64"),
        "aarch64" => Some("SCMP_ARCH_AARCH64"),
        _ => None,
    }
}

/// The profile for `arch` (from [`native_arch`]), as Docker's `seccomp=` security option takes
/// it.
pub(crate) fn profile(arch: &str) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": [arch],
        "syscalls": [
            { "names": ALLOWED.split_whitespace().collect::<Vec<_>>(), "action": "SCMP_ACT_ALLOW" },
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{
                    "index": 0,
                    "value": CLONE_NAMESPACE_FLAGS,
                    "valueTwo": 0,
                    "op": "SCMP_CMP_MASKED_EQ"
                }]
            },
            { "names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowlist_names_each_syscall_once_and_no_dangerous_one() {
        let mut names: Vec<&str> = ALLOWED.split_whitespace().collect();
        names.sort_unstable();
        let len = names.len();
        names.dedup();
        assert_eq!(names.len(), len, "a syscall is listed twice");
        // Unfiltered clone would allow new namespaces; the rest need capabilities or reach
        // into other processes or the kernel.
        let refused = [
            "clone",
            "clone3",
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "unshare",
            "setns",
            "mount",
            "umount2",
            "pivot_root",
            "chroot",
            "bpf",
            "perf_event_open",
            "keyctl",
            "add_key",
            "request_key",
            "init_module",
            "finit_module",
            "kexec_load",
            "personality",
            "modify_ldt",
            "userfaultfd",
            "io_uring_setup",
            "kcmp",
            "pidfd_getfd",
            "open_by_handle_at",
            "reboot",
            "swapon",
            "settimeofday",
            "clock_settime",
            "acct",
        ];
        for name in refused {
            assert!(!names.contains(&name), "{name} must not be allowed unconditionally");
        }
    }

    #[test]
    fn the_profile_is_for_one_architecture_and_filters_clone() {
        let profile = profile("SCMP_ARCH_X86_64");
        assert_eq!(profile["architectures"], json!(["SCMP_ARCH_X86_64"]));
        let rules = profile["syscalls"].as_array().expect("rules");
        let clone = rules.iter().find(|r| r["names"] == json!(["clone"])).expect("clone rule");
        assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone["args"][0]["value"], 0x7E02_0000_u64);
        assert_eq!(native_arch("x86_64"), Some("SCMP_ARCH_X86_64"));
        assert_eq!(native_arch("riscv64"), None);
    }
}
