//! The one error type of the image store.

use std::io;
use std::path::PathBuf;

use super::Digest;

/// An image store operation failed. Each variant names what failed; the cause, where there is
/// one, is the `source`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file system operation failed on `path`.
    #[error("{op} {path}")]
    Io {
        /// What was being done (a constant phrase such as "unpacking into").
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A string that should be a `sha256:<64 hex>` digest is not one.
    #[error("{0:?} is not a sha256 digest")]
    BadDigest(String),
    /// A blob's content does not have the digest it was given under.
    #[error("blob {path} has digest {actual}, expected {expected}")]
    DigestMismatch {
        /// The blob that was checked.
        path: PathBuf,
        /// The digest it was expected to have.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
    /// A layer tarball entry would land outside the layer or write through a symlink.
    #[error("layer entry {entry:?} refused: {reason}")]
    UnsafeEntry {
        /// The entry's path as the tarball names it.
        entry: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A captured file's owner is outside the id range of the sandbox it came from.
    #[error("{path} is owned by host id {id}, outside the sandbox's ids {shift}..{end}")]
    IdOutOfRange {
        /// The file, as a path in the image.
        path: PathBuf,
        /// The host uid or gid found.
        id: u32,
        /// The first host id of the sandbox (its root).
        shift: u32,
        /// One past the sandbox's last host id.
        end: u64,
    },
    /// A JSON document (config, manifest, index, name table) could not be read or written.
    #[error("json of {path}")]
    Json {
        /// The file or blob it was in.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// An import source, image layout or archive is not what it must be.
    #[error("{path}: {reason}")]
    BadImage {
        /// The source.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An image name is not `name[:tag]` of printable characters.
    #[error("{0:?} is not an image name")]
    BadName(String),
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| StoreError::Io { op, path, source }
    }

    pub(crate) fn bad(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        StoreError::BadImage {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
