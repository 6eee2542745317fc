//! The seccomp filter applied to every process started in a sandbox.
//!
//! Two reviewed tables: [`ALLOWED`] (in `allowed.rs`), the syscalls a sandbox may make at all,
//! each with why; every other number fails with `ENOSYS`. And [`POLICY`] (in `policy.rs`), one
//! row per refused syscall with the calls it refuses, the error they fail with and the
//! reason: calls that must fail with `EPERM` (the mount family, `ptrace`, ...) and the
//! conditional refusals of allowed calls (`clone` with namespace flags, `personality`).
//! [`compile`] turns them into BPF: first the allow-list program, then one program per error
//! value of the deny table (a seccomp filter has a single match action). The kernel runs every
//! installed filter and takes the most restrictive answer, and of two errors the one of the
//! filter installed last, so a row of the deny table keeps its own errno.
//! The filter is compiled once per init and installed after `no_new_privs`, just before
//! `execve`, the same in debug and release builds.

mod allowed;
mod policy;

pub use allowed::{ALLOWED, Allowed, MAX_PROBED_NR};
pub use policy::{POLICY, Refuse, Rule};

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// The compiled filters, in installation order (one per error value in [`POLICY`]).
pub struct SandboxFilters {
    programs: Vec<BpfProgram>,
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

/// The seccompiler rules for one row: an empty list matches every call; several rules match
/// when any of them does; the conditions within one rule must all hold.
fn rules_for(refuse: Refuse) -> Result<Vec<SeccompRule>, SeccompError> {
    match refuse {
        Refuse::Always => Ok(vec![]),
        Refuse::Arg0NotIn(allowed) => {
            let conds = allowed
                .iter()
                .map(|v| SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, *v))
                .collect::<Result<Vec<_>, _>>()
                .map_err(SeccompError)?;
            Ok(vec![SeccompRule::new(conds).map_err(SeccompError)?])
        }
        Refuse::Arg0AnyBit(bits) => bits
            .iter()
            .map(|bit| {
                let cond = SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Qword,
                    SeccompCmpOp::MaskedEq(*bit),
                    *bit,
                )
                .map_err(SeccompError)?;
                SeccompRule::new(vec![cond]).map_err(SeccompError)
            })
            .collect(),
    }
}

/// Syscalls the kernel lets past every seccomp filter (x86_64): `uretprobe` (335, Linux
/// 6.11+) and `uprobe` (336, 6.17+), which the trampolines of the kernel's user-space probes
/// call, so that a filter cannot crash every probed process. Called from anywhere else the
/// kernel refuses them itself (SIGILL for `uretprobe`, `ENXIO` for `uprobe`). They are the
/// numbers no filter can refuse, and the ones the blocked set leaves out.
pub const KERNEL_PASSTHROUGH: &[(i64, &str)] = &[(335, "uretprobe"), (336, "uprobe")];

/// Every syscall number up to [`MAX_PROBED_NR`] that a sandbox cannot make at all, with the
/// error it fails with: not in [`ALLOWED`] (`ENOSYS`, or the errno of its [`POLICY`] row),
/// or refused by an unconditional row of [`POLICY`].
///
/// Left out: [`KERNEL_PASSTHROUGH`], which the kernel lets past every seccomp filter.
pub fn blocked() -> Vec<(i64, i32)> {
    let allowed: std::collections::BTreeSet<i64> = ALLOWED.iter().map(|a| a.nr).collect();
    (0..=MAX_PROBED_NR)
        .filter(|nr| KERNEL_PASSTHROUGH.iter().all(|(n, _)| n != nr))
        .filter_map(|nr| {
            let row = POLICY.iter().find(|r| r.nr == nr);
            match row {
                Some(r) if r.refuse == Refuse::Always => Some((nr, r.errno)),
                _ if !allowed.contains(&nr) => Some((nr, row.map_or(libc::ENOSYS, |r| r.errno))),
                _ => None,
            }
        })
        .collect()
}

/// Compiles [`ALLOWED`] and [`POLICY`] into the sandbox filters.
pub fn compile() -> Result<SandboxFilters, SeccompError> {
    let allow_list: BTreeMap<i64, Vec<SeccompRule>> =
        ALLOWED.iter().map(|a| (a.nr, Vec::new())).collect();
    let mut programs = vec![
        SeccompFilter::new(
            allow_list,
            SeccompAction::Errno(libc::ENOSYS as u32),
            SeccompAction::Allow,
            arch(),
        )
        .and_then(BpfProgram::try_from)
        .map_err(SeccompError)?,
    ];
    let mut by_errno: BTreeMap<i32, BTreeMap<i64, Vec<SeccompRule>>> = BTreeMap::new();
    for row in POLICY {
        by_errno
            .entry(row.errno)
            .or_default()
            .insert(row.nr, rules_for(row.refuse)?);
    }
    let deny = by_errno
        .into_iter()
        .map(|(errno, rules)| {
            SeccompFilter::new(
                rules,
                SeccompAction::Allow,
                SeccompAction::Errno(errno as u32),
                arch(),
            )
            .and_then(BpfProgram::try_from)
            .map_err(SeccompError)
        })
        .collect::<Result<Vec<_>, _>>()?;
    programs.extend(deny);
    Ok(SandboxFilters { programs })
}

impl SandboxFilters {
    /// Installs every filter on the calling thread. `no_new_privs` must already be set, or
    /// the caller must hold `CAP_SYS_ADMIN` in its user namespace (a sandbox that lets
    /// set-uid binaries work installs them before dropping root).
    pub fn apply(&self) -> std::io::Result<()> {
        for program in &self.programs {
            crate::sys::proc::install_seccomp_filter(program)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_the_allow_list_then_one_program_per_errno() {
        let f = compile().unwrap();
        assert_eq!(f.programs.len(), 3);
        assert!(f.programs.iter().all(|p| !p.is_empty()));
    }

    /// Conditional rows narrow an allowed call, so the call must be on the allow-list; an
    /// unconditional row must not be (it would be allowed and refused at once, which works
    /// but says two things).
    #[test]
    fn the_two_tables_agree() {
        for r in POLICY {
            let listed = ALLOWED.iter().any(|a| a.nr == r.nr);
            match r.refuse {
                Refuse::Always => assert!(!listed, "{} is allowed and always refused", r.name),
                _ => assert!(listed, "{} is narrowed but not allowed", r.name),
            }
        }
    }

    /// The blocked set is checked in (`blocked-x86_64.txt`: number, errno, name), so a change
    /// to either table shows in review as the calls it opens or closes.
    #[test]
    fn the_blocked_set_is_the_checked_in_one() {
        let text = include_str!("blocked-x86_64.txt");
        let checked_in: Vec<(i64, i32)> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let mut w = l.split_whitespace();
                let nr = w.next().and_then(|v| v.parse().ok()).expect("number");
                let errno = match w.next() {
                    Some("EPERM") => libc::EPERM,
                    Some("ENOSYS") => libc::ENOSYS,
                    other => panic!("errno {other:?} in {l:?}"),
                };
                (nr, errno)
            })
            .collect();
        assert_eq!(blocked(), checked_in);
    }
}
