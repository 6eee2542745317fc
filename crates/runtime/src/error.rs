//! Errors returned by the runtime's public API.

use std::path::PathBuf;

use crate::cgroup::CgroupError;
use crate::launch::{FailureKind, LaunchFailure, LaunchStep, kind_of};
use crate::protocol::ExecFailure;

/// Creating or destroying a sandbox failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The sandbox id is not `[a-z0-9]{1,32}`.
    #[error("invalid sandbox id {0:?}: use 1 to 32 lowercase letters and digits")]
    InvalidId(String),
    /// A layer is missing or not a directory.
    #[error("root filesystem layer {0} does not exist or is not a directory")]
    Layer(PathBuf),
    /// No layer was given.
    #[error("a sandbox needs at least one root filesystem layer")]
    NoLayers,
    /// A bind mount is malformed (relative target, missing source).
    #[error("invalid bind mount {source_path} -> {target}: {reason}")]
    Bind {
        /// Host path.
        source_path: PathBuf,
        /// Sandbox path.
        target: PathBuf,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The sandbox's cgroup could not be set up or removed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// Every uid range is taken.
    #[error("no free uid range for a new sandbox (all {0} in use)")]
    UidsExhausted(u32),
    /// The runtime's state directory is unusable.
    #[error("state directory {path}")]
    StateDir {
        /// The directory or file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The launcher binary could not be run.
    #[error("cannot run the sandbox launcher {exe}")]
    Spawn {
        /// The binary.
        exe: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The launcher ran but the sandbox did not start: a step failed (see [`RuntimeError::kind`]
    /// for who can fix it).
    #[error("sandbox {id} failed to start ({}): {step}: {detail}", launch_kind(.step, .errno))]
    Launch {
        /// Sandbox id.
        id: String,
        /// The step that failed.
        step: LaunchStep,
        /// The errno of the failed call, when there was one.
        errno: Option<i32>,
        /// What failed, naming the path or value at fault.
        detail: String,
    },
    /// The sandbox started but the caller's preparation of it ([`crate::Prepare`]) failed; the
    /// sandbox was destroyed.
    #[error("sandbox {id} started but could not be prepared: {message}")]
    Prepare {
        /// Sandbox id.
        id: String,
        /// What the preparation reported.
        message: String,
    },
    /// The runtime configuration is invalid.
    #[error("invalid runtime configuration: {0}")]
    Config(String),
    /// A sandbox with this id already exists.
    #[error("sandbox {0} already exists")]
    Exists(String),
}

fn launch_kind(step: &LaunchStep, errno: &Option<i32>) -> FailureKind {
    kind_of(*step, *errno)
}

impl RuntimeError {
    /// Who can fix the failure: the caller (an invalid spec, an id in use), the image, the
    /// host's operator (a kernel feature, a permission, a broken launcher or state directory),
    /// or nobody right now (resources ran out; a retry may work).
    pub fn kind(&self) -> FailureKind {
        match self {
            RuntimeError::InvalidId(_)
            | RuntimeError::Layer(_)
            | RuntimeError::NoLayers
            | RuntimeError::Bind { .. }
            | RuntimeError::Exists(_) => FailureKind::Request,
            RuntimeError::UidsExhausted(_) => FailureKind::Resource,
            RuntimeError::Launch { step, errno, .. } => kind_of(*step, *errno),
            RuntimeError::Cgroup(_)
            | RuntimeError::StateDir { .. }
            | RuntimeError::Spawn { .. }
            | RuntimeError::Config(_)
            | RuntimeError::Prepare { .. } => FailureKind::Host,
        }
    }

    pub(crate) fn launch(id: &str, failure: LaunchFailure) -> Self {
        RuntimeError::Launch {
            id: id.to_string(),
            step: failure.step,
            errno: failure.errno,
            detail: failure.detail,
        }
    }
}

/// Starting or talking to a process in a sandbox failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The sandbox's control socket refused the connection: the sandbox is gone.
    #[error("sandbox is not running")]
    NotRunning(#[source] std::io::Error),
    /// The process could not be started.
    #[error("{message}")]
    Failed {
        /// Category (maps to an exit code with [`ExecFailure`]).
        kind: ExecFailure,
        /// Detail naming the value at fault.
        message: String,
    },
    /// The init answered something unexpected.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Reading or writing the control connection failed.
    #[error("control connection")]
    Io(#[source] std::io::Error),
}

impl ExecFailure {
    /// The exit code a shell would report for this failure (127 not found, 126 not
    /// executable, 1 otherwise).
    pub fn exit_code(self) -> i32 {
        match self {
            ExecFailure::NotFound => 127,
            ExecFailure::NotExecutable => 126,
            _ => 1,
        }
    }
}
