//! Errors of filesystem operations and their single mapping to Connect codes.

use std::io;
use std::path::PathBuf;

use crate::connect::{Code, ConnectError};

/// A filesystem operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The path does not exist.
    #[error("path '{}' does not exist", .0.display())]
    NotFound(PathBuf),
    /// `MakeDir` on an existing directory.
    #[error("directory '{}' already exists", .0.display())]
    AlreadyExists(PathBuf),
    /// A directory was required.
    #[error("path '{}' is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// `MakeDir` on an existing non-directory.
    #[error("path '{}' already exists and is not a directory", .0.display())]
    ExistsNotDirectory(PathBuf),
    /// Watching a network filesystem without `allowNetworkMounts`.
    #[error("path '{}' is on a network mount: set allow_network_mounts to watch it", .0.display())]
    NetworkMount(PathBuf),
    /// Unknown watcher id.
    #[error("watcher '{0}' not found")]
    WatcherNotFound(String),
    /// Any other I/O failure.
    #[error("{op} '{}'", path.display())]
    Io {
        /// The operation (`"stat"`, `"rename"`, ...).
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl FsError {
    /// Wraps an I/O error, turning `NotFound` into [`FsError::NotFound`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if source.kind() == io::ErrorKind::NotFound {
            FsError::NotFound(path)
        } else {
            FsError::Io { op, path, source }
        }
    }
}

impl From<FsError> for ConnectError {
    fn from(e: FsError) -> Self {
        let code = match &e {
            FsError::NotFound(_) | FsError::WatcherNotFound(_) => Code::NotFound,
            FsError::AlreadyExists(_) => Code::AlreadyExists,
            FsError::NotADirectory(_)
            | FsError::ExistsNotDirectory(_)
            | FsError::NetworkMount(_) => Code::InvalidArgument,
            FsError::Io { source, .. } => match source.kind() {
                io::ErrorKind::PermissionDenied => Code::PermissionDenied,
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                    Code::ResourceExhausted
                }
                io::ErrorKind::NotADirectory
                | io::ErrorKind::IsADirectory
                | io::ErrorKind::DirectoryNotEmpty
                | io::ErrorKind::InvalidInput => Code::InvalidArgument,
                _ => Code::Internal,
            },
        };
        if code == Code::Internal {
            tracing::error!(error = %crate::error_chain(&e), "filesystem operation failed");
        }
        ConnectError::new(code, crate::error_chain(&e))
    }
}
