//! Messages between the host and a sandbox init over the sandbox's control socket.
//!
//! The socket is `SOCK_SEQPACKET`: one message per packet, JSON-encoded, with file descriptors
//! attached through `SCM_RIGHTS`. One connection carries one process: the host sends
//! [`Request::Exec`], the init answers [`Reply::Started`] (with the process's stdio attached)
//! or [`Reply::ExecFailed`], and later [`Reply::Exited`]. The process's output never passes
//! through the init: the host reads the descriptors directly.

use serde::{Deserialize, Serialize};

use crate::spec::ExecSpec;

/// Largest message either side sends or accepts.
pub const MAX_MESSAGE: usize = 1 << 20;

/// Host → init.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Start a process. Only valid as the first message of a connection.
    Exec(ExecSpec),
    /// Send a signal to the connection's process (or its whole process group).
    Signal {
        /// Signal number.
        signal: i32,
        /// Signal the process group instead of the process.
        group: bool,
    },
    /// Liveness check; answered with [`Reply::Pong`].
    Ping,
    /// A descriptor of the writable layer's directory (the one holding `upper/` and
    /// `work/`), opened before the root was pivoted: the host reaches the upper layer of a
    /// running sandbox through it, for a filesystem snapshot. Answered with
    /// [`Reply::WritableLayer`].
    WritableLayer,
}

/// Why a process could not be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecFailure {
    /// The program was not found (exit code 127 by shell convention).
    NotFound,
    /// The program exists but is not executable (126).
    NotExecutable,
    /// The user is not in the sandbox's /etc/passwd.
    UnknownUser,
    /// The working directory does not exist or is not accessible.
    BadCwd,
    /// The request was malformed (empty argv, NUL bytes, ...).
    Invalid,
    /// Anything else (fork or setup failed).
    Other,
}

/// Init → host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Reply {
    /// The process runs. Attached descriptors, in order: for pipes, stdout, stderr, then stdin
    /// when requested; for a PTY, the master side.
    Started {
        /// Pid inside the sandbox.
        pid: i32,
    },
    /// The process did not start.
    ExecFailed {
        /// Category.
        kind: ExecFailure,
        /// Human-readable detail naming the value at fault.
        message: String,
    },
    /// The process ended.
    Exited {
        /// Exit code when it exited normally.
        code: Option<i32>,
        /// Terminating signal when killed.
        signal: Option<i32>,
    },
    /// Answer to [`Request::Ping`].
    Pong,
    /// Answer to [`Request::WritableLayer`]; the descriptor (`O_PATH`) is attached.
    WritableLayer,
    /// A request could not be handled.
    Error {
        /// What went wrong.
        message: String,
    },
}
