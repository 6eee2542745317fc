//! The seccomp filter applied to every process started in a sandbox.
//!
//! A deny-list on top of the namespace and capability barriers: syscalls that reconfigure the
//! kernel or the mount table, load code into the kernel, or open namespace and handle escape
//! hatches fail with `EPERM`. `clone3` fails with `ENOSYS`, because a filter cannot inspect
//! its flags (they live in memory), which makes libc fall back to `clone`, whose namespace
//! flags are checked here. The filter is compiled once per init and installed after
//! `no_new_privs`, just before `execve`.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Syscalls that always fail with EPERM inside a sandbox.
pub const DENIED: &[(&str, i64)] = &[
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("setns", libc::SYS_setns),
    ("unshare", libc::SYS_unshare),
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("acct", libc::SYS_acct),
    ("quotactl", libc::SYS_quotactl),
    ("iopl", libc::SYS_iopl),
    ("ioperm", libc::SYS_ioperm),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("adjtimex", libc::SYS_adjtimex),
    ("syslog", libc::SYS_syslog),
    ("vhangup", libc::SYS_vhangup),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("uselib", libc::SYS_uselib),
    ("personality", libc::SYS_personality),
];

/// `clone` flags that create namespaces; a `clone` with any of them fails with EPERM.
const NAMESPACE_FLAGS: &[i32] = &[
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWNS,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWCGROUP,
    0x80, // CLONE_NEWTIME
];

/// The compiled filters, in installation order.
pub struct SandboxFilters {
    /// Deny-list returning EPERM.
    pub deny: BpfProgram,
    /// `clone3` returning ENOSYS.
    pub clone3: BpfProgram,
}

/// Compilation of the static filter failed (a bug, not an input error).
#[derive(Debug, thiserror::Error)]
#[error("cannot compile the sandbox seccomp filter")]
pub struct SeccompError(#[source] seccompiler::BackendError);

fn arch() -> TargetArch {
    if cfg!(target_arch = "aarch64") {
        TargetArch::aarch64
    } else {
        TargetArch::x86_64
    }
}

/// Compiles the sandbox filters.
pub fn compile() -> Result<SandboxFilters, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (_, nr) in DENIED {
        rules.insert(*nr, vec![]);
    }
    // `personality` is denied except for the values Docker allows (query, Linux defaults);
    // conditions in one rule are AND-ed, so it matches only when none of them is given.
    let allowed_personas: [u64; 5] = [0, 0x8, 0x20000, 0x20008, 0xffff_ffff];
    let conds = allowed_personas
        .iter()
        .map(|v| SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, *v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(SeccompError)?;
    rules.insert(
        libc::SYS_personality,
        vec![SeccompRule::new(conds).map_err(SeccompError)?],
    );
    let mut clone_rules = Vec::new();
    for flag in NAMESPACE_FLAGS {
        let flag = *flag as u64;
        clone_rules.push(rule(SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(flag),
            flag,
        ))?);
    }
    rules.insert(libc::SYS_clone, clone_rules);
    let deny = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch(),
    )
    .and_then(BpfProgram::try_from)
    .map_err(SeccompError)?;
    let mut c3 = BTreeMap::new();
    c3.insert(libc::SYS_clone3, vec![]);
    let clone3 = SeccompFilter::new(
        c3,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch(),
    )
    .and_then(BpfProgram::try_from)
    .map_err(SeccompError)?;
    Ok(SandboxFilters { deny, clone3 })
}

fn rule(
    cond: Result<SeccompCondition, seccompiler::BackendError>,
) -> Result<SeccompRule, SeccompError> {
    SeccompRule::new(vec![cond.map_err(SeccompError)?]).map_err(SeccompError)
}

impl SandboxFilters {
    /// Installs both filters on the calling thread. `no_new_privs` must already be set.
    pub fn apply(&self) -> Result<(), seccompiler::Error> {
        seccompiler::apply_filter(&self.deny)?;
        seccompiler::apply_filter(&self.clone3)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn compiles() {
        let f = super::compile().unwrap();
        assert!(!f.deny.is_empty());
        assert!(!f.clone3.is_empty());
    }
}
