//! Errors at each boundary: the S3 client ([`S3Error`]), the filesystem ([`FsError`], mapped
//! to an errno once, in the FUSE adapter), credentials and mounting ([`MountError`]).

use std::path::PathBuf;

/// A failed S3 request. Never carries credentials.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The key (or bucket) does not exist (404).
    #[error("not found")]
    NotFound,
    /// S3 refused the credentials or the operation (403, or an auth error code).
    #[error("access denied by the endpoint: {code}")]
    AccessDenied {
        /// The S3 error code, e.g. `InvalidAccessKeyId`, `SignatureDoesNotMatch`.
        code: String,
    },
    /// The bucket does not exist.
    #[error("no such bucket")]
    NoSuchBucket,
    /// The endpoint could not be reached, or the connection broke mid-request.
    #[error("endpoint unreachable")]
    Network(#[source] reqwest::Error),
    /// Any other error response.
    #[error("endpoint returned HTTP {status} {code}")]
    Service {
        /// HTTP status.
        status: u16,
        /// S3 error code from the body (empty when there was none).
        code: String,
    },
    /// The request (with its retries) took longer than its deadline.
    #[error("no answer within {after:?}")]
    Timeout {
        /// The deadline.
        after: std::time::Duration,
    },
    /// The response could not be understood.
    #[error("malformed response: {what}")]
    Malformed {
        /// What was wrong.
        what: &'static str,
    },
}

impl S3Error {
    /// Whether retrying the same request may succeed.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            S3Error::Network(_) => true,
            S3Error::Service { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// Reading credentials failed. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The credentials file could not be read.
    #[error("cannot read credentials file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The profile, or one of its two keys, is missing from the file.
    #[error(
        "profile {profile:?} with aws_access_key_id and aws_secret_access_key not found in {path}"
    )]
    Profile {
        /// The file.
        path: PathBuf,
        /// The profile looked for.
        profile: String,
    },
}

/// A [`crate::MountConfig`] that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The bucket name is empty or has characters S3 does not allow.
    #[error("invalid bucket name {0:?}")]
    Bucket(String),
    /// The endpoint is not an http(s) URL.
    #[error("invalid endpoint {0:?}: expected http(s)://host[:port]")]
    Endpoint(String),
    /// A numeric setting is out of range.
    #[error("{name} must be {rule}")]
    Range {
        /// The setting.
        name: &'static str,
        /// The allowed range, in words.
        rule: &'static str,
    },
}

/// Mounting failed. The mount is not left behind.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The configuration is invalid.
    #[error("invalid mount configuration")]
    Config(#[from] ConfigError),
    /// The bucket could not be reached with these credentials.
    #[error("cannot access bucket {bucket:?} at {endpoint}")]
    Bucket {
        /// The bucket.
        bucket: String,
        /// The endpoint URL.
        endpoint: String,
        /// Why.
        #[source]
        source: S3Error,
    },
    /// The tokio runtime or HTTP client could not be built.
    #[error("cannot start the I/O runtime")]
    Runtime(#[source] std::io::Error),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    /// The FUSE mount itself failed (mountpoint missing, not permitted, ...).
    #[error("cannot mount at {mountpoint}")]
    Fuse {
        /// The mountpoint.
        mountpoint: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Unmounting failed.
    #[error("cannot unmount {mountpoint}")]
    Unmount {
        /// The mountpoint.
        mountpoint: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A filesystem operation failed; [`FsError::errno`] is what the caller sees.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// No such file or directory.
    #[error("no such file or directory")]
    NotFound,
    /// The name already exists.
    #[error("already exists")]
    Exists,
    /// The directory is not empty.
    #[error("directory not empty")]
    NotEmpty,
    /// A directory where a file was needed.
    #[error("is a directory")]
    IsDir,
    /// A file where a directory was needed.
    #[error("not a directory")]
    NotDir,
    /// The mount is read-only.
    #[error("read-only mount")]
    ReadOnly,
    /// S3 cannot represent this (symlinks, hard links, devices, ...).
    #[error("not supported on S3")]
    Unsupported,
    /// Invalid argument (bad name, bad handle, ...).
    #[error("invalid argument")]
    Invalid,
    /// The name is longer than S3 allows.
    #[error("name too long")]
    NameTooLong,
    /// The file would exceed what one multipart upload can hold.
    #[error("file too large")]
    TooLarge,
    /// The file handle is unknown (closed already).
    #[error("bad file handle")]
    BadHandle,
    /// An S3 request failed.
    #[error("s3 {op} failed for key {key:?}")]
    S3 {
        /// The request, e.g. `GetObject`.
        op: &'static str,
        /// The object key.
        key: String,
        /// Why.
        #[source]
        source: S3Error,
    },
    /// An earlier part upload of this open file failed, so the object cannot be completed;
    /// the error was returned then, and is returned again until the file is closed.
    #[error("an earlier upload of key {key:?} failed; the data written since open is lost")]
    UploadFailed {
        /// The object key.
        key: String,
    },
    /// The local staging file failed.
    #[error("staging file I/O failed")]
    Staging(#[from] std::io::Error),
}

impl FsError {
    /// The errno this error returns to the caller.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::Exists => libc::EEXIST,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::IsDir => libc::EISDIR,
            FsError::NotDir => libc::ENOTDIR,
            FsError::ReadOnly => libc::EROFS,
            FsError::Unsupported => libc::EPERM,
            FsError::Invalid => libc::EINVAL,
            FsError::NameTooLong => libc::ENAMETOOLONG,
            FsError::TooLarge => libc::EFBIG,
            FsError::BadHandle => libc::EBADF,
            FsError::S3 {
                source: S3Error::AccessDenied { .. },
                ..
            } => libc::EACCES,
            FsError::S3 {
                source: S3Error::NotFound,
                ..
            } => libc::ENOENT,
            FsError::S3 { .. } | FsError::Staging(_) | FsError::UploadFailed { .. } => libc::EIO,
        }
    }

    /// Whether this error is worth a log line at warn level or above (an I/O failure),
    /// rather than an ordinary answer such as "not found".
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            FsError::S3 { .. } | FsError::Staging(_) | FsError::UploadFailed { .. }
        )
    }

    /// Wraps an S3 error with the request and key it belongs to.
    pub(crate) fn s3<'a>(op: &'static str, key: &'a str) -> impl FnOnce(S3Error) -> FsError + 'a {
        move |source| FsError::S3 {
            op,
            key: key.to_string(),
            source,
        }
    }
}
