//! Errors returned by the runtime's public API.

use std::path::PathBuf;

use crate::cgroup::CgroupError;
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
    /// The launcher ran but the sandbox did not start.
    #[error("sandbox {id} failed to start: {message}")]
    Launch {
        /// Sandbox id.
        id: String,
        /// What the launcher reported.
        message: String,
    },
    /// The runtime configuration is invalid.
    #[error("invalid runtime configuration: {0}")]
    Config(String),
    /// A sandbox with this id already exists.
    #[error("sandbox {0} already exists")]
    Exists(String),
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
