//! Symlinks, fifos, sockets and device nodes, stored as s3fs-fuse stores them: a symlink is
//! an object whose body is the target, the others are empty objects; the type (and a
//! device's number) is in the metadata. They are never opened through us: the kernel
//! follows symlinks with `readlink` and serves fifos, sockets and devices itself.

use std::time::SystemTime;

use bytes::Bytes;

use super::cache::Known;
use super::inodes::Kind;
use super::{Attr, S3Fs};
use crate::client::Meta;
use crate::error::FsError;

impl S3Fs {
    /// `symlink(parent, name, target)`: an object holding `target`, mode `S_IFLNK | 0777`,
    /// owned by `uid`/`gid`.
    pub(crate) async fn symlink(
        &self,
        parent: u64,
        name: &std::ffi::OsStr,
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> Result<Attr, FsError> {
        self.check_special()?;
        let mut meta = Self::stored_meta(Kind::File, 0o777, uid, gid);
        meta.mode = Some(libc::S_IFLNK | 0o777);
        let body = Bytes::copy_from_slice(target);
        self.put_special(parent, name, body, meta).await
    }

    /// `mknod` of a fifo, socket or device node (`mode` holds the type): an empty object
    /// with that mode, and `rdev` for a device.
    pub(crate) async fn mknod_special(
        &self,
        parent: u64,
        name: &std::ffi::OsStr,
        mode: u32,
        rdev: u32,
        uid: u32,
        gid: u32,
    ) -> Result<Attr, FsError> {
        self.check_special()?;
        let ty = mode & libc::S_IFMT;
        if ![libc::S_IFIFO, libc::S_IFSOCK, libc::S_IFCHR, libc::S_IFBLK].contains(&ty) {
            return Err(FsError::Invalid);
        }
        let mut meta = Self::stored_meta(Kind::File, mode, uid, gid);
        meta.mode = Some(ty | (mode & 0o7777));
        if ty == libc::S_IFCHR || ty == libc::S_IFBLK {
            meta.rdev = Some(rdev);
        }
        self.put_special(parent, name, Bytes::new(), meta).await
    }

    /// Types live in the stored mode: with uniform attributes there is nowhere to keep them.
    fn check_special(&self) -> Result<(), FsError> {
        self.check_writable()?;
        if self.cfg.uniform() {
            return Err(FsError::Unsupported);
        }
        Ok(())
    }

    /// Creates `name` in `parent` as one PUT of `body` with `meta`; `EEXIST` when taken.
    async fn put_special(
        &self,
        parent: u64,
        name: &std::ffi::OsStr,
        body: Bytes,
        meta: Meta,
    ) -> Result<Attr, FsError> {
        self.check_writable()?;
        let path = self.child_path(parent, name)?;
        if self.resolve(&path).await? != Known::Absent {
            return Err(FsError::Exists);
        }
        let key = self.file_key(&path);
        let size = body.len() as u64;
        self.client
            .put_object_meta(&key, body, &meta)
            .await
            .map_err(FsError::s3("PutObject", &key))?;
        let mtime = SystemTime::now();
        self.cache_put(&path, Known::File { size, mtime, meta });
        self.touch_parent(&path).await;
        Ok(Attr {
            ino: self.ino_for(&path, Kind::File),
            kind: Kind::File,
            size,
            mtime,
            meta,
        })
    }

    /// `readlink(ino)`: the body of a symlink object; `EINVAL` for anything else.
    pub(crate) async fn readlink(&self, ino: u64) -> Result<Bytes, FsError> {
        let attr = self.getattr(ino).await?;
        if attr.meta.file_type() != libc::S_IFLNK {
            return Err(FsError::Invalid);
        }
        let (path, _) = self.path_of(ino)?;
        let key = self.file_key(&path);
        self.client
            .get_range(&key, 0, attr.size)
            .await
            .map_err(FsError::s3("GetObject", &key))
    }
}
