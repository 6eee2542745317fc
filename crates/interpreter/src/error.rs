//! Errors of the execution server, one enum per boundary.

use std::path::PathBuf;

/// A configuration the server refuses.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A kernel command is empty or lacks `{connection_file}`.
    #[error("the kernel command of {0:?} is empty or lacks {{connection_file}}")]
    KernelCommand(String),
    /// A directory that must be absolute is not.
    #[error("{0} is not an absolute path")]
    RelativePath(PathBuf),
    /// A pre-warmed language has no kernel command.
    #[error("no kernel is configured for the language {0:?}")]
    UnknownLanguage(String),
}

/// Why a kernel could not be started or talked to.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Writing the connection file or spawning the process failed.
    #[error("starting the kernel: {0}")]
    Spawn(#[source] std::io::Error),
    /// The ZMQ side failed (connect, send, a malformed or unsigned message).
    #[error("talking to the kernel: {0}")]
    Zmq(String),
    /// The process exited before it answered.
    #[error("the kernel exited while starting ({0}); its last output: {1}")]
    ExitedEarly(String, String),
    /// It did not answer `kernel_info` in time.
    #[error("the kernel did not answer within {0} s")]
    StartTimeout(u64),
}

/// The server's own failures (binding, serving).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// I/O on the listener.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}
