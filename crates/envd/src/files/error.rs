//! Errors of `/files` and their single mapping to HTTP statuses and JSON bodies.

use std::io;
use std::path::PathBuf;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A `/files` request that failed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// Missing or wrong token, and no valid signature.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The signature has expired.
    #[error("signature is already expired")]
    SignatureExpired,
    /// The `username` does not exist.
    #[error("invalid username: '{0}'")]
    UnknownUser(String),
    /// The path does not exist.
    #[error("path '{}' does not exist", .0.display())]
    NotFound(PathBuf),
    /// The path is a directory.
    #[error("path '{}' is a directory", .0.display())]
    IsDirectory(PathBuf),
    /// A malformed request (no path, bad multipart, duplicate targets, bad metadata).
    #[error("{0}")]
    BadRequest(String),
    /// The disk is full.
    #[error("not enough disk space available")]
    NoSpace,
    /// The user may not do this (the kernel said so, acting as the user).
    #[error("{op} '{}': permission denied", path.display())]
    PermissionDenied {
        /// The operation.
        op: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// Any other I/O failure.
    #[error("{op} '{}'", path.display())]
    Io {
        /// The operation.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl FilesError {
    /// Wraps an I/O error: not found → 404, ENOSPC/EDQUOT → 507, is-a-directory → 400,
    /// permission denied → 403.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        match source.kind() {
            io::ErrorKind::NotFound => FilesError::NotFound(path),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => FilesError::NoSpace,
            io::ErrorKind::IsADirectory => FilesError::IsDirectory(path),
            io::ErrorKind::PermissionDenied => FilesError::PermissionDenied { op, path },
            _ => FilesError::Io { op, path, source },
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            FilesError::Unauthorized(_)
            | FilesError::SignatureExpired
            | FilesError::UnknownUser(_) => StatusCode::UNAUTHORIZED,
            FilesError::NotFound(_) => StatusCode::NOT_FOUND,
            FilesError::PermissionDenied { .. } => StatusCode::FORBIDDEN,
            FilesError::IsDirectory(_) | FilesError::BadRequest(_) => StatusCode::BAD_REQUEST,
            FilesError::NoSpace => StatusCode::INSUFFICIENT_STORAGE,
            FilesError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<crate::filesystem::error::FsError> for FilesError {
    fn from(e: crate::filesystem::error::FsError) -> Self {
        use crate::filesystem::error::FsError;
        match e {
            FsError::NotFound(p) => FilesError::NotFound(p),
            FsError::NotADirectory(p) | FsError::ExistsNotDirectory(p) => {
                FilesError::BadRequest(format!("path '{}' is not a directory", p.display()))
            }
            FsError::Io { op, path, source } => FilesError::io(op, path, source),
            other => FilesError::BadRequest(other.to_string()),
        }
    }
}

impl IntoResponse for FilesError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %crate::error_chain(&self), "file transfer failed");
        } else {
            tracing::debug!(error = %crate::error_chain(&self), "file transfer refused");
        }
        let body =
            serde_json::json!({ "code": status.as_u16(), "message": crate::error_chain(&self) })
                .to_string();
        let mut res = (status, body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        res
    }
}
