//! The syscalls a sandbox may make: the allow-list. Every syscall number not listed here
//! fails with `ENOSYS` before it reaches the kernel, the answer a kernel without the call
//! gives, which every libc and runtime handles (they fall back to an older call). Calls the
//! reviewed deny table ([`POLICY`](super::POLICY)) names fail with that table's error instead,
//! and its conditional rows (`clone` with namespace flags, `personality`) are allowed here
//! and narrowed there.
//!
//! The reference is Docker's default profile, adapted: Docker allows some calls only with a
//! capability its containers may lack (`CAP_SYS_ADMIN`, `CAP_SYS_PTRACE`, ...); a sandbox's
//! root holds the capabilities of its own user namespace, so the choice here is per call,
//! not per capability. A syscall newer than this review is refused until someone reads it
//! and adds a row: that is the point of an allow-list (a deny-list let `open_tree_attr`,
//! `listmount`, `statmount`, the `lsm_*` calls, the `*xattrat` calls and `mseal` through).
//!
//! Numbers are x86_64's (`libc` constants; literals for calls newer than the `libc` crate's
//! table, named in a comment). The blocked set these rows imply is checked in
//! (`blocked-x86_64.txt`) and probed number by number from inside a real sandbox
//! (`hostile::every_syscall_outside_the_allow_list_is_refused`).

/// One allowed syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Allowed {
    /// Syscall name, as in `man 2`.
    pub name: &'static str,
    /// Syscall number on x86_64.
    pub nr: i64,
    /// Why a sandbox needs it.
    pub reason: &'static str,
}

const fn allow(name: &'static str, nr: i64, reason: &'static str) -> Allowed {
    Allowed { name, nr, reason }
}

const FILES: &str = "files and directories inside the sandbox's own root";
const XATTR: &str =
    "extended attributes of the sandbox's own files (user.* metadata, capabilities of images)";
const IO: &str = "reading, writing and waiting on descriptors the process holds";
const MEMORY: &str = "managing the process's own address space";
const NUMA: &str = "memory placement policy of the process's own pages";
const PROCESS: &str = "starting, waiting for and ending processes of the sandbox";
const IDS: &str = "user and group ids within the sandbox's user namespace";
const SIGNALS: &str = "signals between processes of the sandbox (its pid namespace)";
const TIMERS: &str = "clocks and timers, read-only for the system clock";
const THREADS: &str = "threads, futexes and per-thread state";
const SCHED: &str = "scheduling of the process's own threads";
const LIMITS: &str = "resource limits and usage (raising a hard limit needs a host capability)";
const IPC: &str = "System V and POSIX IPC, in the sandbox's own IPC namespace";
const NET: &str = "sockets, in the sandbox's own network namespace";
const EVENTS: &str = "event notification on descriptors and files";
const AIO: &str = "Linux native asynchronous I/O (libaio, databases)";
const UTS: &str = "host and domain name of the sandbox's own UTS namespace";
const SELF_RESTRICT: &str = "a process narrowing its own rights (seccomp, Landlock, no_new_privs)";
const INFO: &str = "facts about the process and the system it runs on";

/// The allowed syscalls (x86_64), by purpose.
pub const ALLOWED: &[Allowed] = &[
    // Files.
    allow("open", libc::SYS_open, FILES),
    allow("openat", libc::SYS_openat, FILES),
    allow("openat2", libc::SYS_openat2, FILES),
    allow("creat", libc::SYS_creat, FILES),
    allow("close", libc::SYS_close, FILES),
    allow("close_range", libc::SYS_close_range, FILES),
    allow("stat", libc::SYS_stat, FILES),
    allow("fstat", libc::SYS_fstat, FILES),
    allow("lstat", libc::SYS_lstat, FILES),
    allow("newfstatat", libc::SYS_newfstatat, FILES),
    allow("statx", libc::SYS_statx, FILES),
    allow("statfs", libc::SYS_statfs, FILES),
    allow("fstatfs", libc::SYS_fstatfs, FILES),
    allow("access", libc::SYS_access, FILES),
    allow("faccessat", libc::SYS_faccessat, FILES),
    allow("faccessat2", libc::SYS_faccessat2, FILES),
    allow("getdents", libc::SYS_getdents, FILES),
    allow("getdents64", libc::SYS_getdents64, FILES),
    allow("getcwd", libc::SYS_getcwd, FILES),
    allow("chdir", libc::SYS_chdir, FILES),
    allow("fchdir", libc::SYS_fchdir, FILES),
    allow(
        "chroot",
        libc::SYS_chroot,
        "a narrower root inside the sandbox's own (build tools, package managers)",
    ),
    allow("rename", libc::SYS_rename, FILES),
    allow("renameat", libc::SYS_renameat, FILES),
    allow("renameat2", libc::SYS_renameat2, FILES),
    allow("mkdir", libc::SYS_mkdir, FILES),
    allow("mkdirat", libc::SYS_mkdirat, FILES),
    allow("rmdir", libc::SYS_rmdir, FILES),
    allow("link", libc::SYS_link, FILES),
    allow("linkat", libc::SYS_linkat, FILES),
    allow("unlink", libc::SYS_unlink, FILES),
    allow("unlinkat", libc::SYS_unlinkat, FILES),
    allow("symlink", libc::SYS_symlink, FILES),
    allow("symlinkat", libc::SYS_symlinkat, FILES),
    allow("readlink", libc::SYS_readlink, FILES),
    allow("readlinkat", libc::SYS_readlinkat, FILES),
    allow(
        "mknod",
        libc::SYS_mknod,
        "FIFOs and sockets; device nodes are refused by the kernel in a user namespace",
    ),
    allow("mknodat", libc::SYS_mknodat, "as mknod"),
    allow("chmod", libc::SYS_chmod, FILES),
    allow("fchmod", libc::SYS_fchmod, FILES),
    allow("fchmodat", libc::SYS_fchmodat, FILES),
    allow("fchmodat2", libc::SYS_fchmodat2, FILES),
    allow("chown", libc::SYS_chown, FILES),
    allow("fchown", libc::SYS_fchown, FILES),
    allow("lchown", libc::SYS_lchown, FILES),
    allow("fchownat", libc::SYS_fchownat, FILES),
    allow("umask", libc::SYS_umask, FILES),
    allow("utime", libc::SYS_utime, FILES),
    allow("utimes", libc::SYS_utimes, FILES),
    allow("futimesat", libc::SYS_futimesat, FILES),
    allow("utimensat", libc::SYS_utimensat, FILES),
    allow("truncate", libc::SYS_truncate, FILES),
    allow("ftruncate", libc::SYS_ftruncate, FILES),
    allow("fallocate", libc::SYS_fallocate, FILES),
    allow("fsync", libc::SYS_fsync, FILES),
    allow("fdatasync", libc::SYS_fdatasync, FILES),
    allow("sync", libc::SYS_sync, FILES),
    allow("syncfs", libc::SYS_syncfs, FILES),
    allow("sync_file_range", libc::SYS_sync_file_range, FILES),
    allow("flock", libc::SYS_flock, FILES),
    allow("fadvise64", libc::SYS_fadvise64, FILES),
    allow("readahead", libc::SYS_readahead, FILES),
    allow("memfd_create", libc::SYS_memfd_create, FILES),
    allow(
        "cachestat",
        451,
        "page-cache state of the process's own files (cachestat, 451)",
    ),
    allow("setxattr", libc::SYS_setxattr, XATTR),
    allow("lsetxattr", libc::SYS_lsetxattr, XATTR),
    allow("fsetxattr", libc::SYS_fsetxattr, XATTR),
    allow("getxattr", libc::SYS_getxattr, XATTR),
    allow("lgetxattr", libc::SYS_lgetxattr, XATTR),
    allow("fgetxattr", libc::SYS_fgetxattr, XATTR),
    allow("listxattr", libc::SYS_listxattr, XATTR),
    allow("llistxattr", libc::SYS_llistxattr, XATTR),
    allow("flistxattr", libc::SYS_flistxattr, XATTR),
    allow("removexattr", libc::SYS_removexattr, XATTR),
    allow("lremovexattr", libc::SYS_lremovexattr, XATTR),
    allow("fremovexattr", libc::SYS_fremovexattr, XATTR),
    // Descriptors.
    allow("read", libc::SYS_read, IO),
    allow("write", libc::SYS_write, IO),
    allow("pread64", libc::SYS_pread64, IO),
    allow("pwrite64", libc::SYS_pwrite64, IO),
    allow("readv", libc::SYS_readv, IO),
    allow("writev", libc::SYS_writev, IO),
    allow("preadv", libc::SYS_preadv, IO),
    allow("pwritev", libc::SYS_pwritev, IO),
    allow("preadv2", libc::SYS_preadv2, IO),
    allow("pwritev2", libc::SYS_pwritev2, IO),
    allow("lseek", libc::SYS_lseek, IO),
    allow("sendfile", libc::SYS_sendfile, IO),
    allow("copy_file_range", libc::SYS_copy_file_range, IO),
    allow("splice", libc::SYS_splice, IO),
    allow("tee", libc::SYS_tee, IO),
    allow("vmsplice", libc::SYS_vmsplice, IO),
    allow("pipe", libc::SYS_pipe, IO),
    allow("pipe2", libc::SYS_pipe2, IO),
    allow("dup", libc::SYS_dup, IO),
    allow("dup2", libc::SYS_dup2, IO),
    allow("dup3", libc::SYS_dup3, IO),
    allow("fcntl", libc::SYS_fcntl, IO),
    allow(
        "ioctl",
        libc::SYS_ioctl,
        "terminals, sockets and files; what a device answers is the device's own check",
    ),
    allow("poll", libc::SYS_poll, IO),
    allow("ppoll", libc::SYS_ppoll, IO),
    allow("select", libc::SYS_select, IO),
    allow("pselect6", libc::SYS_pselect6, IO),
    allow("epoll_create", libc::SYS_epoll_create, EVENTS),
    allow("epoll_create1", libc::SYS_epoll_create1, EVENTS),
    allow("epoll_ctl", libc::SYS_epoll_ctl, EVENTS),
    allow("epoll_wait", libc::SYS_epoll_wait, EVENTS),
    allow("epoll_pwait", libc::SYS_epoll_pwait, EVENTS),
    allow("epoll_pwait2", libc::SYS_epoll_pwait2, EVENTS),
    allow("eventfd", libc::SYS_eventfd, EVENTS),
    allow("eventfd2", libc::SYS_eventfd2, EVENTS),
    allow("signalfd", libc::SYS_signalfd, EVENTS),
    allow("signalfd4", libc::SYS_signalfd4, EVENTS),
    allow("timerfd_create", libc::SYS_timerfd_create, EVENTS),
    allow("timerfd_settime", libc::SYS_timerfd_settime, EVENTS),
    allow("timerfd_gettime", libc::SYS_timerfd_gettime, EVENTS),
    allow(
        "inotify_init",
        libc::SYS_inotify_init,
        "file watching (counted per sandbox: its user namespace is its own)",
    ),
    allow("inotify_init1", libc::SYS_inotify_init1, "as inotify_init"),
    allow("inotify_add_watch", libc::SYS_inotify_add_watch, EVENTS),
    allow("inotify_rm_watch", libc::SYS_inotify_rm_watch, EVENTS),
    allow("io_setup", libc::SYS_io_setup, AIO),
    allow("io_destroy", libc::SYS_io_destroy, AIO),
    allow("io_submit", libc::SYS_io_submit, AIO),
    allow("io_cancel", libc::SYS_io_cancel, AIO),
    allow("io_getevents", libc::SYS_io_getevents, AIO),
    allow(
        "io_pgetevents",
        333,
        "as io_getevents, with a signal mask (io_pgetevents, 333)",
    ),
    // Memory.
    allow("brk", libc::SYS_brk, MEMORY),
    allow("mmap", libc::SYS_mmap, MEMORY),
    allow("munmap", libc::SYS_munmap, MEMORY),
    allow("mprotect", libc::SYS_mprotect, MEMORY),
    allow("mremap", libc::SYS_mremap, MEMORY),
    allow("msync", libc::SYS_msync, MEMORY),
    allow("mincore", libc::SYS_mincore, MEMORY),
    allow("madvise", libc::SYS_madvise, MEMORY),
    allow("remap_file_pages", libc::SYS_remap_file_pages, MEMORY),
    allow("mlock", libc::SYS_mlock, MEMORY),
    allow("mlock2", libc::SYS_mlock2, MEMORY),
    allow("munlock", libc::SYS_munlock, MEMORY),
    allow("mlockall", libc::SYS_mlockall, MEMORY),
    allow("munlockall", libc::SYS_munlockall, MEMORY),
    allow("pkey_mprotect", libc::SYS_pkey_mprotect, MEMORY),
    allow("pkey_alloc", libc::SYS_pkey_alloc, MEMORY),
    allow("pkey_free", libc::SYS_pkey_free, MEMORY),
    allow(
        "membarrier",
        libc::SYS_membarrier,
        "memory barriers across the process's threads (JIT runtimes)",
    ),
    allow(
        "map_shadow_stack",
        453,
        "the CPU's shadow stack for the process's threads (map_shadow_stack, 453)",
    ),
    allow("mbind", libc::SYS_mbind, NUMA),
    allow("set_mempolicy", libc::SYS_set_mempolicy, NUMA),
    allow("get_mempolicy", libc::SYS_get_mempolicy, NUMA),
    // Processes.
    allow(
        "clone",
        libc::SYS_clone,
        "fork and threads; namespace flags are refused by the deny table",
    ),
    allow("fork", libc::SYS_fork, PROCESS),
    allow("vfork", libc::SYS_vfork, PROCESS),
    allow("execve", libc::SYS_execve, PROCESS),
    allow("execveat", libc::SYS_execveat, PROCESS),
    allow("exit", libc::SYS_exit, PROCESS),
    allow("exit_group", libc::SYS_exit_group, PROCESS),
    allow("wait4", libc::SYS_wait4, PROCESS),
    allow("waitid", libc::SYS_waitid, PROCESS),
    allow("getpid", libc::SYS_getpid, PROCESS),
    allow("getppid", libc::SYS_getppid, PROCESS),
    allow("getpgrp", libc::SYS_getpgrp, PROCESS),
    allow("getpgid", libc::SYS_getpgid, PROCESS),
    allow("setpgid", libc::SYS_setpgid, PROCESS),
    allow("getsid", libc::SYS_getsid, PROCESS),
    allow("setsid", libc::SYS_setsid, PROCESS),
    allow(
        "prctl",
        libc::SYS_prctl,
        "per-process settings (names, no_new_privs, dumpable); what needs a host capability fails on it",
    ),
    allow("arch_prctl", libc::SYS_arch_prctl, THREADS),
    allow(
        "personality",
        libc::SYS_personality,
        "queries and the default domains; others are refused by the deny table",
    ),
    allow(
        "pidfd_open",
        libc::SYS_pidfd_open,
        "a handle on a process of the sandbox (waiting, signalling)",
    ),
    allow("pidfd_send_signal", libc::SYS_pidfd_send_signal, SIGNALS),
    // Ids and capabilities.
    allow("getuid", libc::SYS_getuid, IDS),
    allow("geteuid", libc::SYS_geteuid, IDS),
    allow("getgid", libc::SYS_getgid, IDS),
    allow("getegid", libc::SYS_getegid, IDS),
    allow("getresuid", libc::SYS_getresuid, IDS),
    allow("getresgid", libc::SYS_getresgid, IDS),
    allow("getgroups", libc::SYS_getgroups, IDS),
    allow("setuid", libc::SYS_setuid, IDS),
    allow("setgid", libc::SYS_setgid, IDS),
    allow("setreuid", libc::SYS_setreuid, IDS),
    allow("setregid", libc::SYS_setregid, IDS),
    allow("setresuid", libc::SYS_setresuid, IDS),
    allow("setresgid", libc::SYS_setresgid, IDS),
    allow("setgroups", libc::SYS_setgroups, IDS),
    allow("setfsuid", libc::SYS_setfsuid, IDS),
    allow("setfsgid", libc::SYS_setfsgid, IDS),
    allow("capget", libc::SYS_capget, IDS),
    allow(
        "capset",
        libc::SYS_capset,
        "dropping capabilities (the bounding set is cut at launch)",
    ),
    // Signals.
    allow("rt_sigaction", libc::SYS_rt_sigaction, SIGNALS),
    allow("rt_sigprocmask", libc::SYS_rt_sigprocmask, SIGNALS),
    allow("rt_sigreturn", libc::SYS_rt_sigreturn, SIGNALS),
    allow("rt_sigpending", libc::SYS_rt_sigpending, SIGNALS),
    allow("rt_sigtimedwait", libc::SYS_rt_sigtimedwait, SIGNALS),
    allow("rt_sigqueueinfo", libc::SYS_rt_sigqueueinfo, SIGNALS),
    allow("rt_tgsigqueueinfo", libc::SYS_rt_tgsigqueueinfo, SIGNALS),
    allow("rt_sigsuspend", libc::SYS_rt_sigsuspend, SIGNALS),
    allow("sigaltstack", libc::SYS_sigaltstack, SIGNALS),
    allow("kill", libc::SYS_kill, SIGNALS),
    allow("tkill", libc::SYS_tkill, SIGNALS),
    allow("tgkill", libc::SYS_tgkill, SIGNALS),
    allow("pause", libc::SYS_pause, SIGNALS),
    allow("restart_syscall", libc::SYS_restart_syscall, SIGNALS),
    // Time.
    allow("nanosleep", libc::SYS_nanosleep, TIMERS),
    allow("clock_nanosleep", libc::SYS_clock_nanosleep, TIMERS),
    allow("clock_gettime", libc::SYS_clock_gettime, TIMERS),
    allow("clock_getres", libc::SYS_clock_getres, TIMERS),
    allow("gettimeofday", libc::SYS_gettimeofday, TIMERS),
    allow("time", libc::SYS_time, TIMERS),
    allow("alarm", libc::SYS_alarm, TIMERS),
    allow("getitimer", libc::SYS_getitimer, TIMERS),
    allow("setitimer", libc::SYS_setitimer, TIMERS),
    allow("timer_create", libc::SYS_timer_create, TIMERS),
    allow("timer_settime", libc::SYS_timer_settime, TIMERS),
    allow("timer_gettime", libc::SYS_timer_gettime, TIMERS),
    allow("timer_getoverrun", libc::SYS_timer_getoverrun, TIMERS),
    allow("timer_delete", libc::SYS_timer_delete, TIMERS),
    // Threads.
    allow("futex", libc::SYS_futex, THREADS),
    allow("futex_waitv", libc::SYS_futex_waitv, THREADS),
    allow("futex_wake", 454, "futex2 (futex_wake, 454)"),
    allow("futex_wait", 455, "futex2 (futex_wait, 455)"),
    allow("futex_requeue", 456, "futex2 (futex_requeue, 456)"),
    allow("set_tid_address", libc::SYS_set_tid_address, THREADS),
    allow("set_robust_list", libc::SYS_set_robust_list, THREADS),
    allow("get_robust_list", libc::SYS_get_robust_list, THREADS),
    allow("rseq", libc::SYS_rseq, THREADS),
    allow("set_thread_area", libc::SYS_set_thread_area, THREADS),
    allow("get_thread_area", libc::SYS_get_thread_area, THREADS),
    allow("gettid", libc::SYS_gettid, THREADS),
    // Scheduling.
    allow("sched_yield", libc::SYS_sched_yield, SCHED),
    allow("sched_setparam", libc::SYS_sched_setparam, SCHED),
    allow("sched_getparam", libc::SYS_sched_getparam, SCHED),
    allow("sched_setscheduler", libc::SYS_sched_setscheduler, SCHED),
    allow("sched_getscheduler", libc::SYS_sched_getscheduler, SCHED),
    allow(
        "sched_get_priority_max",
        libc::SYS_sched_get_priority_max,
        SCHED,
    ),
    allow(
        "sched_get_priority_min",
        libc::SYS_sched_get_priority_min,
        SCHED,
    ),
    allow(
        "sched_rr_get_interval",
        libc::SYS_sched_rr_get_interval,
        SCHED,
    ),
    allow("sched_setaffinity", libc::SYS_sched_setaffinity, SCHED),
    allow("sched_getaffinity", libc::SYS_sched_getaffinity, SCHED),
    allow("sched_setattr", libc::SYS_sched_setattr, SCHED),
    allow("sched_getattr", libc::SYS_sched_getattr, SCHED),
    allow("getpriority", libc::SYS_getpriority, SCHED),
    allow("setpriority", libc::SYS_setpriority, SCHED),
    allow("ioprio_get", libc::SYS_ioprio_get, SCHED),
    allow("ioprio_set", libc::SYS_ioprio_set, SCHED),
    allow("getcpu", libc::SYS_getcpu, SCHED),
    // Limits.
    allow("getrlimit", libc::SYS_getrlimit, LIMITS),
    allow("setrlimit", libc::SYS_setrlimit, LIMITS),
    allow("prlimit64", libc::SYS_prlimit64, LIMITS),
    allow("getrusage", libc::SYS_getrusage, LIMITS),
    allow("times", libc::SYS_times, LIMITS),
    // IPC.
    allow("shmget", libc::SYS_shmget, IPC),
    allow("shmat", libc::SYS_shmat, IPC),
    allow("shmdt", libc::SYS_shmdt, IPC),
    allow("shmctl", libc::SYS_shmctl, IPC),
    allow("semget", libc::SYS_semget, IPC),
    allow("semop", libc::SYS_semop, IPC),
    allow("semtimedop", libc::SYS_semtimedop, IPC),
    allow("semctl", libc::SYS_semctl, IPC),
    allow("msgget", libc::SYS_msgget, IPC),
    allow("msgsnd", libc::SYS_msgsnd, IPC),
    allow("msgrcv", libc::SYS_msgrcv, IPC),
    allow("msgctl", libc::SYS_msgctl, IPC),
    allow("mq_open", libc::SYS_mq_open, IPC),
    allow("mq_unlink", libc::SYS_mq_unlink, IPC),
    allow("mq_timedsend", libc::SYS_mq_timedsend, IPC),
    allow("mq_timedreceive", libc::SYS_mq_timedreceive, IPC),
    allow("mq_notify", libc::SYS_mq_notify, IPC),
    allow("mq_getsetattr", libc::SYS_mq_getsetattr, IPC),
    // Network.
    allow(
        "socket",
        libc::SYS_socket,
        "sockets; raw ones need CAP_NET_RAW, which the bounding set drops",
    ),
    allow("socketpair", libc::SYS_socketpair, NET),
    allow("bind", libc::SYS_bind, NET),
    allow("listen", libc::SYS_listen, NET),
    allow("accept", libc::SYS_accept, NET),
    allow("accept4", libc::SYS_accept4, NET),
    allow("connect", libc::SYS_connect, NET),
    allow("shutdown", libc::SYS_shutdown, NET),
    allow("sendto", libc::SYS_sendto, NET),
    allow("recvfrom", libc::SYS_recvfrom, NET),
    allow("sendmsg", libc::SYS_sendmsg, NET),
    allow("recvmsg", libc::SYS_recvmsg, NET),
    allow("sendmmsg", libc::SYS_sendmmsg, NET),
    allow("recvmmsg", libc::SYS_recvmmsg, NET),
    allow("getsockname", libc::SYS_getsockname, NET),
    allow("getpeername", libc::SYS_getpeername, NET),
    allow("setsockopt", libc::SYS_setsockopt, NET),
    allow("getsockopt", libc::SYS_getsockopt, NET),
    // The sandbox's own names.
    allow("sethostname", libc::SYS_sethostname, UTS),
    allow("setdomainname", libc::SYS_setdomainname, UTS),
    // Narrowing one's own rights.
    allow("seccomp", libc::SYS_seccomp, SELF_RESTRICT),
    allow(
        "landlock_create_ruleset",
        libc::SYS_landlock_create_ruleset,
        SELF_RESTRICT,
    ),
    allow(
        "landlock_add_rule",
        libc::SYS_landlock_add_rule,
        SELF_RESTRICT,
    ),
    allow(
        "landlock_restrict_self",
        libc::SYS_landlock_restrict_self,
        SELF_RESTRICT,
    ),
    // Facts.
    allow("uname", libc::SYS_uname, INFO),
    allow("sysinfo", libc::SYS_sysinfo, INFO),
    allow("getrandom", libc::SYS_getrandom, INFO),
];

/// The highest syscall number the probe and the checked-in blocked set cover: above every
/// number the kernels of today assign on x86_64 (469 in Linux 6.18), so calls added later are
/// inside the probed range.
pub const MAX_PROBED_NR: i64 = 511;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_allowed_row_is_unique_and_has_a_reason() {
        let mut seen = std::collections::BTreeSet::new();
        for a in ALLOWED {
            assert!(seen.insert(a.nr), "{} listed twice", a.name);
            assert!(!a.reason.is_empty(), "{} has no reason", a.name);
            assert!((0..=MAX_PROBED_NR).contains(&a.nr), "{}", a.name);
        }
    }
}
