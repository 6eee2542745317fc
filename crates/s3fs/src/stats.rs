//! What a mount did, counted since its process started: S3 requests, the retries of
//! transient failures, the requests that failed in the end, and the bytes of object data
//! sent and received. A process runs one mount (`bulkhead mount`), so the counters are the
//! process's. The daemon writes them to a file (`--stats-file`) every few seconds, where the
//! server reads them for its `/metrics`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;

static REQUESTS: AtomicU64 = AtomicU64::new(0);
static RETRIES: AtomicU64 = AtomicU64::new(0);
static ERRORS: AtomicU64 = AtomicU64::new(0);
static BYTES_UP: AtomicU64 = AtomicU64::new(0);
static BYTES_DOWN: AtomicU64 = AtomicU64::new(0);
static INODES: AtomicU64 = AtomicU64::new(0);

pub(crate) fn request() {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
}
pub(crate) fn retry() {
    RETRIES.fetch_add(1, Ordering::Relaxed);
}
pub(crate) fn error() {
    ERRORS.fetch_add(1, Ordering::Relaxed);
}
pub(crate) fn uploaded(n: usize) {
    BYTES_UP.fetch_add(n as u64, Ordering::Relaxed);
}
pub(crate) fn downloaded(n: usize) {
    BYTES_DOWN.fetch_add(n as u64, Ordering::Relaxed);
}
pub(crate) fn inodes(n: usize) {
    INODES.store(n as u64, Ordering::Relaxed);
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountStats {
    /// S3 requests sent (each attempt).
    pub requests: u64,
    /// Attempts repeated after a transient failure.
    pub retries: u64,
    /// Requests that failed in the end (a missing object is not a failure).
    pub errors: u64,
    /// Object bytes sent (PUT bodies, upload parts).
    pub bytes_uploaded: u64,
    /// Object bytes received (GET bodies).
    pub bytes_downloaded: u64,
    /// Inodes the mount holds now (what the kernel has not forgotten), a gauge.
    pub inodes: u64,
}

impl MountStats {
    /// The counters now.
    pub fn now() -> Self {
        Self {
            requests: REQUESTS.load(Ordering::Relaxed),
            retries: RETRIES.load(Ordering::Relaxed),
            errors: ERRORS.load(Ordering::Relaxed),
            bytes_uploaded: BYTES_UP.load(Ordering::Relaxed),
            bytes_downloaded: BYTES_DOWN.load(Ordering::Relaxed),
            inodes: INODES.load(Ordering::Relaxed),
        }
    }

    /// Reads a stats file written by [`MountStats::write`]; `None` when absent or unreadable.
    pub fn read(path: &Path) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        Some(Self {
            requests: n("requests"),
            retries: n("retries"),
            errors: n("errors"),
            bytes_uploaded: n("bytesUploaded"),
            bytes_downloaded: n("bytesDownloaded"),
            inodes: n("inodes"),
        })
    }

    /// Writes the counters to `path` whole (a temp file renamed over it).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = json!({
            "requests": self.requests,
            "retries": self.retries,
            "errors": self.errors,
            "bytesUploaded": self.bytes_uploaded,
            "bytesDownloaded": self.bytes_downloaded,
            "inodes": self.inodes,
        })
        .to_string();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_written_file_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.stats.json");
        let s = MountStats {
            requests: 5,
            retries: 1,
            errors: 2,
            bytes_uploaded: 300,
            bytes_downloaded: 4000,
            inodes: 7,
        };
        s.write(&p).unwrap();
        assert_eq!(MountStats::read(&p), Some(s));
        assert_eq!(MountStats::read(&dir.path().join("none")), None);
    }
}
