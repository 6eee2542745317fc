//! The launch plan the host sends to the launcher (JSON on its stdin), and its answer.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::failure::LaunchFailure;
use crate::spec::SandboxSpec;

/// Everything the launcher needs; computed and validated by the host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchPlan {
    /// The sandbox.
    pub spec: SandboxSpec,
    /// `<state>/sandboxes/<id>`: mount points and the control socket live here.
    pub dir: PathBuf,
    /// The control socket to bind (inside `dir`).
    pub socket: PathBuf,
    /// Host uid (and gid) that root inside the sandbox maps to.
    pub root_host_id: u32,
    /// Size of the mapped id range.
    pub id_count: u32,
    /// cgroup directories to join before creating any child.
    pub cgroup_dirs: Vec<PathBuf>,
}

/// The launcher's answer on stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LaunchOutcome {
    /// The sandbox init runs with this host pid.
    Ready {
        /// Host pid of the sandbox init.
        init_pid: i32,
    },
    /// The sandbox could not be started.
    Failed(LaunchFailure),
}
