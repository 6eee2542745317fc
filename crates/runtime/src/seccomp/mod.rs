//! The seccomp filter applied to every process started in a sandbox.
//!
//! The policy is the table [`POLICY`] (in `policy.rs`): one row per refused syscall, with the
//! calls it refuses, the error they fail with and the reason. [`compile`] turns it into one BPF
//! program per error value (a seccomp filter has a single match action), installed in order.
//! The filter is compiled once per init and installed after `no_new_privs`, just before
//! `execve`, the same in debug and release builds.

mod policy;

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

/// Compiles [`POLICY`] into the sandbox filters.
pub fn compile() -> Result<SandboxFilters, SeccompError> {
    let mut by_errno: BTreeMap<i32, BTreeMap<i64, Vec<SeccompRule>>> = BTreeMap::new();
    for row in POLICY {
        by_errno
            .entry(row.errno)
            .or_default()
            .insert(row.nr, rules_for(row.refuse)?);
    }
    let programs = by_errno
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
    Ok(SandboxFilters { programs })
}

impl SandboxFilters {
    /// Installs every filter on the calling thread. `no_new_privs` must already be set.
    pub fn apply(&self) -> Result<(), seccompiler::Error> {
        for program in &self.programs {
            seccompiler::apply_filter(program)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn compiles_one_program_per_errno() {
        let f = super::compile().unwrap();
        assert_eq!(f.programs.len(), 2);
        assert!(f.programs.iter().all(|p| !p.is_empty()));
    }
}
