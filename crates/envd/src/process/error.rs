//! Errors of the process service and their single mapping to Connect codes.

use std::path::PathBuf;

use crate::connect::{Code, ConnectError};

/// A process operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// No process matches the selector.
    #[error("process with {0} not found")]
    NotFound(String),
    /// The selector names neither a pid nor a tag.
    #[error("process selector must name a pid or a tag")]
    NoSelector,
    /// The working directory does not exist.
    #[error("cwd '{}' does not exist", .0.display())]
    CwdMissing(PathBuf),
    /// The executable could not be started.
    #[error("error starting process '{cmd}'")]
    Spawn {
        /// The command.
        cmd: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The PTY could not be allocated or configured.
    #[error("allocating a pty")]
    Pty(#[source] std::io::Error),
    /// The process was started without a stdin pipe, or it was closed.
    #[error("stdin of process {0} is not open")]
    NoStdin(u32),
    /// PTY input or resize for a process without a PTY.
    #[error("process {0} has no pty")]
    NoPty(u32),
    /// `CloseStdin` on a PTY process.
    #[error("process {0} uses a pty: send Ctrl-D (0x04) as input instead of closing stdin")]
    CloseStdinOfPty(u32),
    /// Writing input failed.
    #[error("writing input to process {pid}")]
    Write {
        /// The process.
        pid: u32,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A signal other than SIGKILL/SIGTERM.
    #[error("signal {0} is not supported (only SIGKILL and SIGTERM)")]
    UnsupportedSignal(String),
    /// Sending the signal failed.
    #[error("sending signal to process {pid}")]
    Signal {
        /// The process.
        pid: u32,
        /// The cause.
        #[source]
        source: nix::Error,
    },
}

impl From<ProcessError> for ConnectError {
    fn from(e: ProcessError) -> Self {
        let code = match &e {
            ProcessError::NotFound(_) => Code::NotFound,
            ProcessError::NoSelector | ProcessError::CwdMissing(_) | ProcessError::Spawn { .. } => {
                Code::InvalidArgument
            }
            ProcessError::NoStdin(_)
            | ProcessError::NoPty(_)
            | ProcessError::CloseStdinOfPty(_) => Code::FailedPrecondition,
            ProcessError::UnsupportedSignal(_) => Code::Unimplemented,
            ProcessError::Pty(_) | ProcessError::Write { .. } | ProcessError::Signal { .. } => {
                Code::Internal
            }
        };
        if code == Code::Internal {
            tracing::error!(error = %crate::error_chain(&e), "process operation failed");
        }
        ConnectError::new(code, crate::error_chain(&e))
    }
}
