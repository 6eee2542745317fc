//! The sandbox's seccomp policy as reviewed data: one row per refused syscall, each with the
//! reason it is refused. [`compile`](super::compile) turns this table into BPF, and the hostile
//! test (`crates/bulkhead/tests/hostile.rs`) serialises the same table and tries every row from
//! inside a real sandbox, so a row cannot be added without being tested.
//!
//! The table sits on top of the allow-list ([`ALLOWED`](super::ALLOWED)), which refuses every
//! call it does not name with `ENOSYS`: a row here gives a refused call `EPERM` instead (or
//! narrows an allowed call by its arguments). Most rows are refused by a missing capability
//! too, and are listed so that a kernel bug in a capability check does not open them.

use serde::Serialize;

/// Which calls of a syscall a [`Rule`] refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refuse {
    /// Every call.
    Always,
    /// Calls whose first argument (compared as 32 bits) is none of these values.
    Arg0NotIn(&'static [u64]),
    /// Calls whose first argument (64 bits) has any of these bits set; each value is one bit.
    Arg0AnyBit(&'static [u64]),
}

/// One refused syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Syscall name, as in `man 2`.
    pub name: &'static str,
    /// Syscall number on this architecture (from the `libc` constants).
    pub nr: i64,
    /// Which calls are refused.
    pub refuse: Refuse,
    /// The error a refused call fails with.
    pub errno: i32,
    /// Why the syscall is refused.
    pub reason: &'static str,
}

const fn always(name: &'static str, nr: i64, reason: &'static str) -> Rule {
    Rule {
        name,
        nr,
        refuse: Refuse::Always,
        errno: libc::EPERM,
        reason,
    }
}

/// `personality` values that stay allowed (as in Docker's profile): query, `PER_LINUX`,
/// `PER_LINUX32`, `UNAME26` and `PER_LINUX32 | UNAME26`.
const ALLOWED_PERSONAS: &[u64] = &[0xffff_ffff, 0, 0x8, 0x20000, 0x20008];

/// `clone` flags that create namespaces.
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWCGROUP as u64,
    0x80, // CLONE_NEWTIME (not in libc)
];

const MOUNT: &str = "changes the mount table; sandbox mounts are fixed at launch";
const KEXEC: &str = "replaces the running kernel";
const MODULE: &str = "loads or unloads kernel code";
const KEYS: &str = "the kernel keyring is not namespaced: keys would be shared with the host";
const TIME: &str = "the system clock is shared with the host";
const HANDLE: &str =
    "file handles open files by inode number, bypassing the mount root (the shocker escape)";
const NS: &str = "new or joined namespaces are a way to regain capabilities";
const PEEK: &str = "reads or writes another process's memory";
const SWAP: &str = "swap devices are host-wide";
const URING: &str = "io_uring has been a steady source of kernel exploits and bypasses seccomp for the operations it queues";
const NEW_MOUNT: &str = "the new mount API changes the mount table";

/// The deny table, in no particular order. A call not matched here is as the allow-list says.
pub const POLICY: &[Rule] = &[
    always("mount", libc::SYS_mount, MOUNT),
    always("umount2", libc::SYS_umount2, MOUNT),
    always("pivot_root", libc::SYS_pivot_root, MOUNT),
    always("fsopen", libc::SYS_fsopen, NEW_MOUNT),
    always("fsconfig", libc::SYS_fsconfig, NEW_MOUNT),
    always("fsmount", libc::SYS_fsmount, NEW_MOUNT),
    always("fspick", libc::SYS_fspick, NEW_MOUNT),
    always("move_mount", libc::SYS_move_mount, NEW_MOUNT),
    always("open_tree", libc::SYS_open_tree, NEW_MOUNT),
    always("mount_setattr", libc::SYS_mount_setattr, NEW_MOUNT),
    always("kexec_load", libc::SYS_kexec_load, KEXEC),
    always("kexec_file_load", libc::SYS_kexec_file_load, KEXEC),
    always("init_module", libc::SYS_init_module, MODULE),
    always("finit_module", libc::SYS_finit_module, MODULE),
    always("delete_module", libc::SYS_delete_module, MODULE),
    always(
        "bpf",
        libc::SYS_bpf,
        "eBPF programs run in the kernel; the verifier is a large attack surface",
    ),
    always(
        "perf_event_open",
        libc::SYS_perf_event_open,
        "observes host-wide events and has a history of kernel exploits",
    ),
    always("keyctl", libc::SYS_keyctl, KEYS),
    always("add_key", libc::SYS_add_key, KEYS),
    always("request_key", libc::SYS_request_key, KEYS),
    always("reboot", libc::SYS_reboot, "reboots or halts the host"),
    always("swapon", libc::SYS_swapon, SWAP),
    always("swapoff", libc::SYS_swapoff, SWAP),
    always("open_by_handle_at", libc::SYS_open_by_handle_at, HANDLE),
    always("name_to_handle_at", libc::SYS_name_to_handle_at, HANDLE),
    always(
        "userfaultfd",
        libc::SYS_userfaultfd,
        "stalls kernel page faults at will, a building block of race exploits",
    ),
    always("setns", libc::SYS_setns, NS),
    always("unshare", libc::SYS_unshare, NS),
    Rule {
        name: "clone",
        nr: libc::SYS_clone,
        refuse: Refuse::Arg0AnyBit(NAMESPACE_FLAGS),
        errno: libc::EPERM,
        reason: "a clone with namespace flags is unshare by another door; plain clone (fork, threads) stays",
    },
    Rule {
        name: "clone3",
        nr: libc::SYS_clone3,
        refuse: Refuse::Always,
        errno: libc::ENOSYS,
        reason: "its flags live in memory, which a filter cannot read; ENOSYS makes libc fall back to clone, whose flags are checked",
    },
    always(
        "ptrace",
        libc::SYS_ptrace,
        "tracing other processes of the sandbox (the init included) reaches their memory and descriptors",
    ),
    always("process_vm_readv", libc::SYS_process_vm_readv, PEEK),
    always("process_vm_writev", libc::SYS_process_vm_writev, PEEK),
    always(
        "acct",
        libc::SYS_acct,
        "process accounting is host-wide and writes to a host file",
    ),
    always("quotactl", libc::SYS_quotactl, "disk quotas are host-wide"),
    always("iopl", libc::SYS_iopl, "raw access to I/O ports"),
    always("ioperm", libc::SYS_ioperm, "raw access to I/O ports"),
    always("settimeofday", libc::SYS_settimeofday, TIME),
    always("clock_settime", libc::SYS_clock_settime, TIME),
    always("clock_adjtime", libc::SYS_clock_adjtime, TIME),
    always("adjtimex", libc::SYS_adjtimex, TIME),
    always(
        "syslog",
        libc::SYS_syslog,
        "the kernel log is the host's and leaks kernel addresses",
    ),
    always(
        "vhangup",
        libc::SYS_vhangup,
        "hangs up terminals the sandbox does not own",
    ),
    always(
        "lookup_dcookie",
        libc::SYS_lookup_dcookie,
        "resolves kernel directory-entry cookies to host paths",
    ),
    always("io_uring_setup", libc::SYS_io_uring_setup, URING),
    always("io_uring_enter", libc::SYS_io_uring_enter, URING),
    always("io_uring_register", libc::SYS_io_uring_register, URING),
    always(
        "uselib",
        libc::SYS_uselib,
        "an obsolete loader entry point with a history of kernel bugs",
    ),
    Rule {
        name: "personality",
        nr: libc::SYS_personality,
        refuse: Refuse::Arg0NotIn(ALLOWED_PERSONAS),
        errno: libc::EPERM,
        reason: "other execution domains disable address-space randomisation or change syscall semantics",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_is_unique_and_has_a_reason() {
        let mut seen = std::collections::BTreeSet::new();
        for r in POLICY {
            assert!(seen.insert(r.nr), "{} listed twice", r.name);
            assert!(!r.reason.is_empty(), "{} has no reason", r.name);
            assert!(r.errno > 0, "{}", r.name);
        }
    }
}
