//! File handle operations: create, open, write, flush/fsync, release, and truncation by
//! `setattr`. The content itself is managed by [`WriteState`].

use std::time::SystemTime;

use super::cache::Known;
use super::inodes::Kind;
use super::write::WriteState;
use super::{Attr, Handle, S3Fs, lock};
use crate::client::Meta;
use crate::error::FsError;

impl S3Fs {
    /// `create(parent, name)`: a new empty file with the attributes `meta`, open for
    /// writing. It is in S3 (with `meta`) once committed.
    pub(crate) async fn create(
        &self,
        parent: u64,
        name: &std::ffi::OsStr,
        meta: Meta,
    ) -> Result<(Attr, u64), FsError> {
        self.check_writable()?;
        let path = self.child_path(parent, name)?;
        if let Known::Dir(_) = self.resolve(&path).await? {
            return Err(FsError::IsDir);
        }
        let ino = self.ino_for(&path, Kind::File);
        let key = self.file_key(&path);
        let state = self.attach_writer(ino, || WriteState::empty(key, path.clone(), meta));
        let (size, meta) = {
            let mut s = state.lock().await;
            s.truncate(self, 0).await?;
            (s.size(), s.meta())
        };
        let fh = self.new_fh(Handle::Write { ino, state });
        self.touch_parent(&path).await;
        Ok((
            Attr {
                ino,
                kind: Kind::File,
                size,
                mtime: SystemTime::now(),
                meta,
            },
            fh,
        ))
    }

    /// `open(ino, flags)`.
    pub(crate) async fn open(&self, ino: u64, flags: i32) -> Result<u64, FsError> {
        let (path, kind) = self.path_of(ino)?;
        if kind == Kind::Dir {
            return Err(FsError::IsDir);
        }
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        let existing = self.writer_of(ino);
        let (size, meta) = match &existing {
            Some(w) => {
                let w = w.lock().await;
                (w.size(), w.meta())
            }
            None => match self.resolve(&path).await? {
                Known::File { size, meta, .. } => (size, meta),
                Known::Dir(_) => return Err(FsError::IsDir),
                Known::Absent => return Err(FsError::NotFound),
            },
        };
        let key = self.file_key(&path);
        if !writable {
            let handle = match self.cfg.read_strategy {
                crate::ReadStrategy::Ranged => Handle::Read(super::read::ReadState::new(
                    key,
                    size,
                    self.cfg.readahead,
                    self.read_budget.clone(),
                    self.read_pool.clone(),
                )),
                crate::ReadStrategy::Streamed => Handle::ReadStreamed(tokio::sync::Mutex::new(
                    super::read_stream::StreamReadState::new(key, size, self.cfg.readahead),
                )),
            };
            return Ok(self.new_fh(handle));
        }
        self.check_writable()?;
        let state = self.attach_writer(ino, || WriteState::clean(key, path, size, meta));
        if flags & libc::O_TRUNC != 0 {
            let r = state.lock().await.truncate(self, 0).await;
            if let Err(e) = r {
                self.detach_writer(ino);
                return Err(e);
            }
        }
        Ok(self.new_fh(Handle::Write { ino, state }))
    }

    /// `write(fh, offset, data)`.
    /// `write(fh, offset, data)` by thread `tid` (the request's pid).
    pub(crate) async fn write(
        &self,
        fh: u64,
        offset: u64,
        data: &[u8],
        tid: u32,
    ) -> Result<u32, FsError> {
        match &*self.handle(fh)? {
            Handle::Write { state, .. } => {
                let mut s = state.lock().await;
                s.note_writer(tid);
                s.write(self, offset, data).await
            }
            _ => Err(FsError::BadHandle),
        }
    }

    /// `flush(fh)` (every `close`): commits the file and returns the upload's error if it
    /// failed. A file only emptied (created or opened with `O_TRUNC`, nothing written) is
    /// left to the last release: closing a duplicate descriptor before the data comes
    /// must not replace the previous object with nothing. Nor does a close by a process that
    /// did not write commit ([`WriteState::flush_commits`]): the child of a fork closing its
    /// copy of the descriptor.
    pub(crate) async fn flush(&self, fh: u64, tid: u32) -> Result<(), FsError> {
        match &*self.handle(fh)? {
            Handle::Write { state, .. } => {
                let mut s = state.lock().await;
                if s.only_emptied() || !s.flush_commits(tid) {
                    return Ok(());
                }
                s.commit(self).await
            }
            _ => Ok(()),
        }
    }

    /// `fsync(fh)`: commits the file, whatever it holds.
    pub(crate) async fn fsync(&self, fh: u64) -> Result<(), FsError> {
        match &*self.handle(fh)? {
            Handle::Write { state, .. } => state.lock().await.commit(self).await,
            _ => Ok(()),
        }
    }

    /// `release(fh)`: the last writer commits whatever is still pending. Its error cannot
    /// reach the caller any more (close already returned), so it is logged.
    pub(crate) async fn release(&self, fh: u64) {
        let Some(handle) = self.take_handle(fh) else {
            return;
        };
        if let Handle::Write { ino, state } = &*handle {
            let mut s = state.lock().await;
            if s.is_dirty()
                && let Err(e) = s.commit(self).await
            {
                tracing::error!(key = %s.key(), error = %crate::fuse::chain(&e), "data written to this file could not be uploaded");
            }
            if self.detach_writer(*ino) {
                s.set_released();
            }
            drop(s);
        }
    }

    /// Releases every handle still open, as the kernel's releases would: at unmount, a
    /// release the kernel had queued but not delivered (a close right before the unmount)
    /// must not lose what was written.
    pub(crate) async fn release_all(&self) {
        let open: Vec<u64> = lock(&self.handles).keys().copied().collect();
        if !open.is_empty() {
            tracing::info!(
                handles = open.len(),
                "committing files still open at unmount"
            );
        }
        for fh in open {
            self.release(fh).await;
        }
    }

    /// `setattr(ino, size)`: truncation through an open writer, or at once (and committed,
    /// keeping the stored attributes) when none is open.
    pub(crate) async fn set_size(&self, ino: u64, size: u64) -> Result<(), FsError> {
        self.check_writable()?;
        let (path, kind) = self.path_of(ino)?;
        if kind == Kind::Dir {
            return Err(FsError::IsDir);
        }
        if let Some(w) = self.writer_of(ino) {
            let mut s = w.lock().await;
            s.truncate(self, size).await?;
            if s.is_released() {
                // The last handle went away while we waited: nobody else will commit it.
                s.commit(self).await?;
            }
            return Ok(());
        }
        let (cur, meta) = match self.resolve(&path).await? {
            Known::File { size, meta, .. } => (size, meta),
            Known::Dir(_) => return Err(FsError::IsDir),
            Known::Absent => return Err(FsError::NotFound),
        };
        let mut state = WriteState::clean(self.file_key(&path), path, cur, meta);
        state.truncate(self, size).await?;
        state.commit(self).await
    }
}
