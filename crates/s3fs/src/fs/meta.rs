//! Stored attributes: chmod, chown and utimens write mode, owner and times to the object's
//! metadata (a CopyObject onto itself for a file, a new marker for a directory), so they
//! persist and other s3fs-compatible clients see them.

use std::time::SystemTime;

use super::S3Fs;
use super::cache::Known;
use super::inodes::Kind;
use crate::client::Meta;
use crate::client::meta::epoch_secs;
use crate::error::FsError;

/// What a `setattr` asks to change besides the size.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MetaChange {
    /// Permission bits (type bits are ignored).
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub atime: Option<SystemTime>,
    pub mtime: Option<SystemTime>,
}

impl MetaChange {
    /// Whether anything is to change.
    pub(crate) fn is_empty(&self) -> bool {
        self.mode.is_none()
            && self.uid.is_none()
            && self.gid.is_none()
            && self.atime.is_none()
            && self.mtime.is_none()
    }
}

fn type_bits(kind: Kind) -> u32 {
    match kind {
        Kind::File => libc::S_IFREG,
        Kind::Dir => libc::S_IFDIR,
    }
}

impl S3Fs {
    /// The attributes a new entry of `kind` gets: permission bits `mode` (already masked by
    /// the kernel), owned by the creating `uid`/`gid`, all times now. None with uniform
    /// attributes (the object is written without metadata).
    pub(crate) fn new_meta(&self, kind: Kind, mode: u32, uid: u32, gid: u32) -> Meta {
        if self.cfg.uniform() {
            return Meta::default();
        }
        Self::stored_meta(kind, mode, uid, gid)
    }

    /// The attributes stored on a new entry (see [`Self::new_meta`]).
    pub(crate) fn stored_meta(kind: Kind, mode: u32, uid: u32, gid: u32) -> Meta {
        let now = epoch_secs(SystemTime::now());
        Meta {
            mode: Some(type_bits(kind) | (mode & 0o7777)),
            uid: Some(uid),
            gid: Some(gid),
            atime: Some(now),
            mtime: Some(now),
            ctime: Some(now),
            rdev: None,
        }
    }

    /// `cur` with `ch` applied and every field filled in (the mount's defaults, times from
    /// `last_modified`); ctime becomes now.
    fn changed_meta(
        &self,
        kind: Kind,
        cur: Meta,
        last_modified: SystemTime,
        ch: &MetaChange,
    ) -> Meta {
        let default_perm = match kind {
            Kind::File => self.cfg.file_mode,
            Kind::Dir => self.cfg.dir_mode,
        };
        let perm = ch
            .mode
            .or(cur.mode)
            .map_or(u32::from(default_perm), |m| m & 0o7777);
        let mtime = ch
            .mtime
            .map(epoch_secs)
            .or(cur.mtime)
            .unwrap_or_else(|| epoch_secs(last_modified));
        // A symlink, fifo, socket or device keeps its type.
        let ty = match cur.file_type() {
            0 => type_bits(kind),
            t => t,
        };
        Meta {
            mode: Some(ty | perm),
            uid: ch.uid.or(cur.uid).or(Some(self.cfg.uid)),
            gid: ch.gid.or(cur.gid).or(Some(self.cfg.gid)),
            atime: ch.atime.map(epoch_secs).or(cur.atime).or(Some(mtime)),
            mtime: Some(mtime),
            ctime: Some(epoch_secs(SystemTime::now())),
            rdev: cur.rdev,
        }
    }

    /// With uniform attributes nothing is stored: a mode or owner other than the one shown is
    /// refused with `EPERM`, the same ones and any times are accepted and change nothing
    /// (the times shown stay `Last-Modified`).
    fn check_uniform(&self, kind: Kind, ch: &MetaChange) -> Result<(), FsError> {
        let perm = u32::from(match kind {
            Kind::File => self.cfg.file_mode,
            Kind::Dir => self.cfg.dir_mode,
        });
        let same_mode = ch.mode.is_none_or(|m| m & 0o7777 == perm);
        let same_uid = ch.uid.is_none_or(|u| u == self.cfg.uid);
        let same_gid = ch.gid.is_none_or(|g| g == self.cfg.gid);
        if same_mode && same_uid && same_gid {
            Ok(())
        } else {
            Err(FsError::Unsupported)
        }
    }

    /// `setattr` of mode, owner or times: stores them on the object and returns only after
    /// S3 did. A file open for writing is committed first, so the copy has its data. The
    /// root of the mount has no object to store them on and refuses with `EPERM`.
    pub(crate) async fn set_meta(&self, ino: u64, ch: MetaChange) -> Result<(), FsError> {
        self.check_writable()?;
        let (path, kind) = self.path_of(ino)?;
        if self.cfg.uniform() {
            return self.check_uniform(kind, &ch);
        }
        if path.is_empty() {
            return Err(FsError::Unsupported);
        }
        if let Some(w) = self.writer_of(ino) {
            let mut w = w.lock().await;
            w.commit(self).await?;
            let meta = self.changed_meta(Kind::File, w.meta(), SystemTime::now(), &ch);
            let key = self.file_key(&path);
            self.client
                .replace_meta(&key, &meta)
                .await
                .map_err(FsError::s3("CopyObject", &key))?;
            w.set_meta(meta);
            self.cache_put(
                &path,
                Known::File {
                    size: w.size(),
                    mtime: SystemTime::now(),
                    meta,
                },
            );
            return Ok(());
        }
        match self.resolve(&path).await? {
            Known::Absent => Err(FsError::NotFound),
            Known::File { size, mtime, meta } => {
                let meta = self.changed_meta(Kind::File, meta, mtime, &ch);
                let key = self.file_key(&path);
                self.client
                    .replace_meta(&key, &meta)
                    .await
                    .map_err(FsError::s3("CopyObject", &key))?;
                self.cache_put(&path, Known::File { size, mtime, meta });
                Ok(())
            }
            Known::Dir(meta) => {
                let meta = self.changed_meta(Kind::Dir, meta, self.mount_time, &ch);
                let key = self.dir_key(&path);
                // The times set here replace any the directory's entries left pending.
                let _marker = self.dir_times.forget(&path).await;
                // The marker is empty: writing it anew (or for the first time, for an
                // implied directory) stores the attributes.
                self.client
                    .put_object_meta(&key, bytes::Bytes::new(), &meta)
                    .await
                    .map_err(FsError::s3("PutObject", &key))?;
                self.cache_put(&path, Known::Dir(meta));
                Ok(())
            }
        }
    }
}
