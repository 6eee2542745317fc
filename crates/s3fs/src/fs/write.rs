//! Writes: streamed as a multipart upload with bounded memory, or through a local staging
//! file for anything that is not a sequential write from offset 0 (appends to an existing
//! object, random writes, in-place edits, truncation to a non-zero size).
//!
//! The object in S3 changes only when the file is committed: at `flush` (every `close`),
//! `fsync`, or the last `release`. A commit returns only after S3 acknowledged the upload,
//! and returns its error when it failed.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::SystemTime;

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::cache::Known;
use super::inodes::Kind;
use super::{Attr, Handle, S3Fs};
use crate::error::{FsError, S3Error};

/// S3's limit on parts per upload.
const MAX_PARTS: u64 = 10_000;

type PartResult = Result<(u32, String), S3Error>;

struct Upload {
    id: String,
    next: u32,
    parts: Vec<(u32, String)>,
    inflight: VecDeque<JoinHandle<PartResult>>,
}

enum Mode {
    /// S3 holds the current content.
    Clean,
    /// Sequential writes from 0: the tail in memory, full parts uploaded or in flight.
    Stream {
        buf: Vec<u8>,
        upload: Option<Upload>,
    },
    /// The whole content in a local (already unlinked) file.
    Staged(File),
}

/// The content of one file open for writing, shared by all its write handles.
pub(crate) struct WriteState {
    key: String,
    path: String,
    size: u64,
    dirty: bool,
    failed: bool,
    mode: Mode,
}

fn join_err(key: &str) -> FsError {
    FsError::s3("UploadPart", key)(S3Error::Malformed {
        what: "upload task ended",
    })
}

impl WriteState {
    /// A file whose S3 object (of `size` bytes) is current.
    pub(crate) fn clean(key: String, path: String, size: u64) -> Self {
        Self {
            key,
            path,
            size,
            dirty: false,
            failed: false,
            mode: Mode::Clean,
        }
    }

    /// A new or truncated file: empty, and written to S3 at the next commit even if nothing
    /// is written to it.
    pub(crate) fn empty(key: String, path: String) -> Self {
        Self {
            key,
            path,
            size: 0,
            dirty: true,
            failed: false,
            mode: Mode::Stream {
                buf: Vec::new(),
                upload: None,
            },
        }
    }

    /// Current size, including what is not uploaded yet.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    fn check_failed(&self) -> Result<(), FsError> {
        if self.failed {
            Err(FsError::UploadFailed {
                key: self.key.clone(),
            })
        } else {
            Ok(())
        }
    }

    fn staging_file(fs: &S3Fs) -> Result<File, FsError> {
        Ok(match &fs.cfg.staging_dir {
            Some(dir) => tempfile::tempfile_in(dir)?,
            None => tempfile::tempfile()?,
        })
    }

    /// Moves the content to a staging file (downloading it when S3 holds it).
    async fn stage_locally(&mut self, fs: &S3Fs) -> Result<(), FsError> {
        if matches!(
            self.mode,
            Mode::Stream {
                upload: Some(_),
                ..
            }
        ) {
            // Parts already sent cannot be read back: finish the object, then download it.
            self.commit(fs).await?;
        }
        let file = Self::staging_file(fs)?;
        match std::mem::replace(&mut self.mode, Mode::Clean) {
            Mode::Staged(f) => {
                self.mode = Mode::Staged(f);
                return Ok(());
            }
            Mode::Stream { buf, .. } => {
                file.write_all_at(&buf, 0)?;
            }
            Mode::Clean => {
                let step = fs.cfg.part_size as u64;
                let mut off = 0;
                while off < self.size {
                    let len = step.min(self.size - off);
                    let b = fs
                        .client
                        .get_range(&self.key, off, len)
                        .await
                        .map_err(FsError::s3("GetObject", &self.key))?;
                    if b.is_empty() {
                        // The object shrank under us: keep what exists.
                        self.size = off;
                        break;
                    }
                    file.write_all_at(&b, off)?;
                    off += b.len() as u64;
                }
            }
        }
        self.mode = Mode::Staged(file);
        Ok(())
    }

    /// Writes `data` at `offset`.
    pub(crate) async fn write(
        &mut self,
        fs: &S3Fs,
        offset: u64,
        data: &[u8],
    ) -> Result<u32, FsError> {
        self.check_failed()?;
        let end = offset + data.len() as u64;
        if end > fs.cfg.part_size as u64 * MAX_PARTS {
            return Err(FsError::TooLarge);
        }
        let len = u32::try_from(data.len()).map_err(|_| FsError::Invalid)?;
        if matches!(self.mode, Mode::Clean) && self.size == 0 && offset == 0 {
            self.mode = Mode::Stream {
                buf: Vec::new(),
                upload: None,
            };
        }
        let sequential = matches!(self.mode, Mode::Stream { .. }) && offset == self.size;
        if !sequential {
            self.stage_locally(fs).await?;
        }
        self.dirty = true;
        if let Mode::Staged(f) = &self.mode {
            f.write_all_at(data, offset)?;
            self.size = self.size.max(end);
            return Ok(len);
        }
        // Stream: fill the part buffer up to exactly one part, send it, go on with the rest.
        // Each part is its own allocation of exactly `part_size` bytes, so memory is
        // `part_size` × (parts in flight + 1) and nothing more.
        let part_size = fs.cfg.part_size;
        let mut rest = data;
        while !rest.is_empty() {
            let Mode::Stream { buf, .. } = &mut self.mode else {
                break;
            };
            let take = (part_size - buf.len()).min(rest.len());
            let need = buf.len() + take;
            if buf.capacity() < need {
                // Doubling, capped at exactly one part.
                let target = (buf.capacity() * 2).max(need).max(64 * 1024).min(part_size);
                buf.reserve_exact(target - buf.len());
            }
            buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            self.size += take as u64;
            if buf.len() == part_size {
                let part = Bytes::from(std::mem::take(buf));
                if let Err(e) = self.send_part(fs, part).await {
                    self.fail(fs).await;
                    return Err(e);
                }
            }
        }
        Ok(len)
    }

    /// Uploads one part, starting the multipart upload if needed; waits while
    /// `upload_concurrency` parts are already in flight (this bounds memory).
    async fn send_part(&mut self, fs: &S3Fs, part: Bytes) -> Result<(), FsError> {
        let key = self.key.clone();
        let Mode::Stream { upload, .. } = &mut self.mode else {
            return Ok(());
        };
        if upload.is_none() {
            let id = fs
                .client
                .create_multipart(&key)
                .await
                .map_err(FsError::s3("CreateMultipartUpload", &key))?;
            *upload = Some(Upload {
                id,
                next: 1,
                parts: Vec::new(),
                inflight: VecDeque::new(),
            });
        }
        let Some(up) = upload.as_mut() else {
            return Ok(());
        };
        while up.inflight.len() >= fs.cfg.upload_concurrency {
            if let Some(h) = up.inflight.pop_front() {
                let done = h.await.map_err(|_| join_err(&key))?;
                up.parts
                    .push(done.map_err(FsError::s3("UploadPart", &key))?);
            }
        }
        let n = up.next;
        up.next += 1;
        let (client, k, id) = (fs.client.clone(), key.clone(), up.id.clone());
        up.inflight.push_back(tokio::spawn(async move {
            client
                .upload_part(&k, &id, n, part)
                .await
                .map(|etag| (n, etag))
        }));
        Ok(())
    }

    /// A streamed upload failed: abort it, and refuse further writes and commits.
    async fn fail(&mut self, fs: &S3Fs) {
        self.failed = true;
        if let Mode::Stream {
            upload: Some(up), ..
        } = std::mem::replace(&mut self.mode, Mode::Clean)
        {
            for h in &up.inflight {
                h.abort();
            }
            if let Err(e) = fs.client.abort_multipart(&self.key, &up.id).await {
                tracing::warn!(key = %self.key, error = %e, "abort of a failed multipart upload failed");
            }
        }
    }

    /// Reads from the content being written.
    pub(crate) async fn read(
        &mut self,
        fs: &S3Fs,
        offset: u64,
        len: u32,
    ) -> Result<Bytes, FsError> {
        self.check_failed()?;
        if offset >= self.size {
            return Ok(Bytes::new());
        }
        let n = u64::from(len).min(self.size - offset);
        if matches!(
            self.mode,
            Mode::Stream {
                upload: Some(_),
                ..
            }
        ) {
            self.stage_locally(fs).await?;
        }
        match &self.mode {
            Mode::Clean => fs
                .client
                .get_range(&self.key, offset, n)
                .await
                .map_err(FsError::s3("GetObject", &self.key)),
            Mode::Stream { buf, .. } => {
                let s = usize::try_from(offset).map_err(|_| FsError::Invalid)?;
                let e = usize::try_from(offset + n).map_err(|_| FsError::Invalid)?;
                Ok(Bytes::copy_from_slice(
                    &buf[s.min(buf.len())..e.min(buf.len())],
                ))
            }
            Mode::Staged(f) => {
                let mut out = vec![0u8; usize::try_from(n).map_err(|_| FsError::Invalid)?];
                f.read_exact_at(&mut out, offset)?;
                Ok(Bytes::from(out))
            }
        }
    }

    /// Sets the size (the next commit writes it).
    pub(crate) async fn truncate(&mut self, fs: &S3Fs, size: u64) -> Result<(), FsError> {
        if size > fs.cfg.part_size as u64 * MAX_PARTS {
            return Err(FsError::TooLarge);
        }
        if size == self.size && !self.failed {
            return Ok(());
        }
        if size == 0 {
            self.fail(fs).await; // aborts any upload in flight
            self.failed = false;
            self.mode = Mode::Stream {
                buf: Vec::new(),
                upload: None,
            };
        } else {
            self.check_failed()?;
            match &mut self.mode {
                Mode::Stream { buf, upload: None } if size < self.size => {
                    buf.truncate(usize::try_from(size).map_err(|_| FsError::Invalid)?);
                }
                _ => {
                    self.stage_locally(fs).await?;
                    if let Mode::Staged(f) = &self.mode {
                        f.set_len(size)?;
                    }
                }
            }
        }
        self.size = size;
        self.dirty = true;
        Ok(())
    }

    /// Makes S3 hold the current content. Returns after S3 acknowledged it.
    pub(crate) async fn commit(&mut self, fs: &S3Fs) -> Result<(), FsError> {
        self.check_failed()?;
        if !self.dirty {
            return Ok(());
        }
        let key = self.key.clone();
        let result = match &mut self.mode {
            Mode::Clean => Ok(()),
            Mode::Stream { buf, upload: None } => fs
                .client
                .put_object(&key, Bytes::copy_from_slice(buf))
                .await
                .map_err(FsError::s3("PutObject", &key)),
            Mode::Stream {
                buf,
                upload: Some(_),
            } => {
                let tail = Bytes::from(std::mem::take(buf));
                let mut r = Ok(());
                if !tail.is_empty() {
                    r = self.send_part(fs, tail).await;
                }
                if r.is_ok() {
                    r = self.complete(fs).await;
                }
                if r.is_err() {
                    self.fail(fs).await;
                }
                r
            }
            Mode::Staged(f) => upload_file(fs, &key, f, self.size).await,
        };
        result?;
        if let Mode::Stream { .. } = self.mode {
            self.mode = Mode::Clean;
        }
        self.dirty = false;
        fs.cache_put(
            &self.path,
            Known::File {
                size: self.size,
                mtime: SystemTime::now(),
            },
        );
        tracing::debug!(key = %self.key, size = self.size, "object committed");
        Ok(())
    }

    async fn complete(&mut self, fs: &S3Fs) -> Result<(), FsError> {
        let key = self.key.clone();
        let Mode::Stream {
            upload: Some(up), ..
        } = &mut self.mode
        else {
            return Ok(());
        };
        while let Some(h) = up.inflight.pop_front() {
            let done = h.await.map_err(|_| join_err(&key))?;
            up.parts
                .push(done.map_err(FsError::s3("UploadPart", &key))?);
        }
        up.parts.sort_by_key(|p| p.0);
        fs.client
            .complete_multipart(&key, &up.id, &up.parts)
            .await
            .map_err(FsError::s3("CompleteMultipartUpload", &key))
    }

    /// Points the state at a new name after a rename, so later commits go there.
    pub(crate) fn retarget(&mut self, key: String, path: String) {
        self.key = key;
        self.path = path;
    }

    /// Whether the content differs from S3.
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty && !self.failed
    }
}

/// Uploads a staging file: one PUT up to a part, else a multipart upload with at most
/// `upload_concurrency` parts in memory.
async fn upload_file(fs: &S3Fs, key: &str, f: &File, size: u64) -> Result<(), FsError> {
    let part = fs.cfg.part_size as u64;
    let read = |off: u64, len: u64| -> Result<Bytes, FsError> {
        let mut b = vec![0u8; usize::try_from(len).map_err(|_| FsError::Invalid)?];
        f.read_exact_at(&mut b, off)?;
        Ok(Bytes::from(b))
    };
    if size <= part {
        let body = read(0, size)?;
        return fs
            .client
            .put_object(key, body)
            .await
            .map_err(FsError::s3("PutObject", key));
    }
    let id = fs
        .client
        .create_multipart(key)
        .await
        .map_err(FsError::s3("CreateMultipartUpload", key))?;
    let result: Result<(), FsError> = async {
        let mut inflight: VecDeque<JoinHandle<PartResult>> = VecDeque::new();
        let mut parts = Vec::new();
        let mut off = 0;
        let mut n = 1u32;
        while off < size {
            if inflight.len() >= fs.cfg.upload_concurrency
                && let Some(h) = inflight.pop_front()
            {
                let done = h.await.map_err(|_| join_err(key))?;
                parts.push(done.map_err(FsError::s3("UploadPart", key))?);
            }
            let len = part.min(size - off);
            let body = read(off, len)?;
            let (client, k, i) = (fs.client.clone(), key.to_string(), id.clone());
            inflight.push_back(tokio::spawn(async move {
                client.upload_part(&k, &i, n, body).await.map(|e| (n, e))
            }));
            off += len;
            n += 1;
        }
        while let Some(h) = inflight.pop_front() {
            let done = h.await.map_err(|_| join_err(key))?;
            parts.push(done.map_err(FsError::s3("UploadPart", key))?);
        }
        fs.client
            .complete_multipart(key, &id, &parts)
            .await
            .map_err(FsError::s3("CompleteMultipartUpload", key))
    }
    .await;
    if result.is_err()
        && let Err(e) = fs.client.abort_multipart(key, &id).await
    {
        tracing::warn!(%key, error = %e, "abort of a failed multipart upload failed");
    }
    result
}

impl S3Fs {
    /// `create(parent, name)`: a new empty file, open for writing.
    pub(crate) async fn create(
        &self,
        parent: u64,
        name: &std::ffi::OsStr,
    ) -> Result<(Attr, u64), FsError> {
        self.check_writable()?;
        let path = self.child_path(parent, name)?;
        if let Known::Dir = self.resolve(&path).await? {
            return Err(FsError::IsDir);
        }
        let ino = self.ino_for(&path, Kind::File);
        let key = self.file_key(&path);
        let state = self.attach_writer(ino, || WriteState::empty(key, path.clone()));
        let size = {
            let mut s = state.lock().await;
            s.truncate(self, 0).await?;
            s.size()
        };
        let fh = self.new_fh(Handle::Write { ino, state });
        Ok((
            Attr {
                ino,
                kind: Kind::File,
                size,
                mtime: SystemTime::now(),
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
        let size = match &existing {
            Some(w) => w.lock().await.size(),
            None => match self.resolve(&path).await? {
                Known::File { size, .. } => size,
                Known::Dir => return Err(FsError::IsDir),
                Known::Absent => return Err(FsError::NotFound),
            },
        };
        let key = self.file_key(&path);
        if !writable {
            let state = super::read::ReadState::new(key, size, self.cfg.readahead);
            return Ok(self.new_fh(Handle::Read(tokio::sync::Mutex::new(state))));
        }
        self.check_writable()?;
        let state = self.attach_writer(ino, || WriteState::clean(key, path, size));
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
    pub(crate) async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32, FsError> {
        match &*self.handle(fh)? {
            Handle::Write { state, .. } => state.lock().await.write(self, offset, data).await,
            _ => Err(FsError::BadHandle),
        }
    }

    /// `flush(fh)` (every `close`) and `fsync(fh)`: commits the file and returns the upload's
    /// error if it failed.
    pub(crate) async fn flush(&self, fh: u64) -> Result<(), FsError> {
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
                tracing::error!(key = %s.key, error = %crate::fuse::chain(&e), "data written to this file could not be uploaded");
            }
            drop(s);
            self.detach_writer(*ino);
        }
    }

    /// `setattr(ino, size)`: truncation through an open writer, or at once (and committed)
    /// when none is open. Mode, owner and times are accepted and not stored.
    pub(crate) async fn set_size(&self, ino: u64, size: u64) -> Result<(), FsError> {
        self.check_writable()?;
        let (path, kind) = self.path_of(ino)?;
        if kind == Kind::Dir {
            return Err(FsError::IsDir);
        }
        if let Some(w) = self.writer_of(ino) {
            return w.lock().await.truncate(self, size).await;
        }
        let cur = match self.resolve(&path).await? {
            Known::File { size, .. } => size,
            Known::Dir => return Err(FsError::IsDir),
            Known::Absent => return Err(FsError::NotFound),
        };
        let mut state = WriteState::clean(self.file_key(&path), path, cur);
        state.truncate(self, size).await?;
        state.commit(self).await
    }
}
