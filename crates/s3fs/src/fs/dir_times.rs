//! Directory times: creating, removing or renaming an entry moves its directory's stored
//! mtime and ctime to now. They are kept in memory at once (every stat on this mount shows
//! them) and written to the directory's marker in the background, at most once per
//! directory per [`FLUSH_EVERY`] and at unmount, so 1,000 creates in one directory cost
//! about 1,000 PUTs, not 2,000. A mount that dies loses at most the last interval's
//! directory times (never an entry).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use super::cache::Known;
use super::{S3Fs, lock};
use crate::client::Meta;
use crate::client::meta::epoch_secs;
use crate::error::FsError;

/// How often pending directory times are written.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Pending directory times, by directory path (epoch seconds).
#[derive(Default)]
pub(crate) struct DirTimes {
    pending: Mutex<HashMap<String, i64>>,
    /// Held while a marker is written or removed, so that a flush never brings back the
    /// marker of a directory removed meanwhile.
    markers: tokio::sync::Mutex<()>,
}

impl DirTimes {
    /// The pending time of directory `path`.
    fn get(&self, path: &str) -> Option<i64> {
        lock(&self.pending).get(path).copied()
    }

    /// Drops the pending times of `path` and everything under it, and returns the marker
    /// lock: hold it while the marker is rewritten or deleted.
    pub(crate) async fn forget(&self, path: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let guard = self.markers.lock().await;
        let under = format!("{path}/");
        lock(&self.pending).retain(|p, _| p != path && !p.starts_with(&under));
        guard
    }
}

impl S3Fs {
    /// An entry of the directory holding `path` was created, removed or renamed: its mtime
    /// and ctime move to now, as s3fs-fuse does. Only a directory whose marker stores
    /// attributes changes (the mount root, implied directories and those of other clients
    /// have none to update); nothing with uniform attributes.
    pub(crate) async fn touch_parent(&self, path: &str) {
        let parent = super::inodes::parent_of(path);
        if parent.is_empty() || self.cfg.uniform() {
            return;
        }
        let now = epoch_secs(SystemTime::now());
        lock(&self.dir_times.pending).insert(parent.to_string(), now);
    }

    /// `known` with the pending times of directory `path` in place of the stored ones.
    pub(crate) fn with_dir_times(&self, path: &str, known: Known) -> Known {
        match known {
            Known::Dir(meta) if !meta.is_empty() => match self.dir_times.get(path) {
                Some(t) => Known::Dir(Meta {
                    mtime: Some(t),
                    ctime: Some(t),
                    ..meta
                }),
                None => known,
            },
            other => other,
        }
    }

    /// Writes every pending directory time to its marker. A failure is logged and retried
    /// at the next flush (the entries themselves are in S3 already).
    pub(crate) async fn flush_dir_times(&self) {
        let dirs: Vec<String> = lock(&self.dir_times.pending).keys().cloned().collect();
        for dir in dirs {
            let _marker = self.dir_times.markers.lock().await;
            let Some(t) = self.dir_times.get(&dir) else {
                continue; // removed, or its times were set meanwhile
            };
            let r: Result<(), FsError> = async {
                if let Known::Dir(meta) = self.resolve(&dir).await?
                    && !meta.is_empty()
                {
                    let key = self.dir_key(&dir);
                    self.client
                        .put_object_meta(&key, bytes::Bytes::new(), &meta)
                        .await
                        .map_err(FsError::s3("PutObject", &key))?;
                    self.cache_put(&dir, Known::Dir(meta));
                }
                Ok(())
            }
            .await;
            match r {
                Ok(()) => {
                    let mut pending = lock(&self.dir_times.pending);
                    if pending.get(&dir) == Some(&t) {
                        pending.remove(&dir);
                    }
                }
                Err(e) => {
                    tracing::warn!(%dir, error = %crate::fuse::chain(&e), "directory times not stored yet");
                }
            }
        }
    }

    /// Flushes pending directory times every [`FLUSH_EVERY`] while the filesystem exists.
    pub(crate) fn spawn_dir_times_flusher(fs: &Arc<Self>, rt: &tokio::runtime::Handle) {
        let weak: Weak<Self> = Arc::downgrade(fs);
        rt.spawn(async move {
            loop {
                tokio::time::sleep(FLUSH_EVERY).await;
                let Some(fs) = weak.upgrade() else { return };
                fs.flush_dir_times().await;
            }
        });
    }
}
