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
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::S3Fs;
use super::cache::Known;
use super::spill::{PartBuf, Spill};
use crate::client::Meta;
use crate::client::meta::epoch_secs;
use crate::error::{FsError, S3Error};

/// S3's limit on parts per upload.
const MAX_PARTS: u64 = 10_000;

pub(super) type PartResult = Result<(u32, String), S3Error>;

struct Upload {
    id: String,
    next: u32,
    parts: Vec<(u32, String)>,
    inflight: VecDeque<JoinHandle<PartResult>>,
    /// Every part sent, at its offset: what a reader or an edit needs before the upload
    /// is complete (parts cannot be read back from S3 until then).
    /// Written beside the uploads, on blocking threads (the copy into the page cache was
    /// half the mount's CPU on a large write and held up the writer).
    spill: Spill,
    /// The first bytes of the content, copied server-side from the object itself (an
    /// append): they are not in the spill file, and the object still holds them.
    copied: u64,
}

/// S3's smallest part but the last: an object at least this large is appended to by copying
/// it server-side as the first parts of a new upload.
const MIN_PART: u64 = 5 << 20;
/// The largest copied part (S3 allows 5 GiB).
const MAX_COPY_PART: u64 = 4 << 30;

enum Mode {
    /// S3 holds the current content.
    Clean,
    /// Sequential writes from 0: the tail in memory, full parts uploaded or in flight.
    Stream {
        buf: PartBuf,
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
    /// The attributes every upload of this file carries.
    meta: Meta,
    /// Its last handle was released: a change made through the inode since (a truncate
    /// that raced the release) must commit itself.
    released: bool,
    /// Its name was removed while open: commits change nothing in S3 any more.
    unlinked: bool,
    /// Size and attributes as of the last change, readable without this state's lock: a
    /// `stat` must not wait behind a write that waits for an upload slot.
    shown: Arc<std::sync::Mutex<(u64, Meta)>>,
    /// Threads (FUSE request pids) that wrote since the last commit, at most
    /// [`MAX_WRITER_THREADS`]; `None` once more did (then every flush commits).
    writer_threads: Option<Vec<u32>>,
}

/// Writing threads remembered per file for [`WriteState::flush_commits`].
const MAX_WRITER_THREADS: usize = 64;

/// The process (thread group) of thread `tid`, from `/proc/<tid>/status`; `None` for a
/// kernel thread (pages written back from a shared mapping), which stands for no process.
fn process_of(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    if field("Kthread:") != Some("0") {
        return None;
    }
    field("Tgid:").and_then(|v| v.parse().ok())
}

/// Writes the object's first `len` bytes into `file` at their offsets (an append's copied
/// start, when the file moves to local staging).
async fn download_into(fs: &S3Fs, key: &str, file: &File, len: u64) -> Result<(), FsError> {
    let step = fs.cfg.part_size as u64;
    let mut off = 0;
    while off < len {
        let want = step.min(len - off);
        let b = fs
            .client
            .get_range(key, off, want)
            .await
            .map_err(FsError::s3("GetObject", key))?;
        if b.len() as u64 != want {
            return Err(FsError::s3("GetObject", key)(S3Error::Malformed {
                what: "the object changed under an append",
            }));
        }
        file.write_all_at(&b, off)?;
        off += want;
    }
    Ok(())
}

pub(super) fn join_err(key: &str) -> FsError {
    FsError::s3("UploadPart", key)(S3Error::Malformed {
        what: "upload task ended",
    })
}

impl WriteState {
    /// A file whose S3 object (of `size` bytes) is current.
    pub(crate) fn clean(key: String, path: String, size: u64, meta: Meta) -> Self {
        Self {
            key,
            path,
            size,
            dirty: false,
            failed: false,
            mode: Mode::Clean,
            shown: Arc::new(std::sync::Mutex::new((size, meta))),
            writer_threads: Some(Vec::new()),
            meta,
            released: false,
            unlinked: false,
        }
    }

    /// A new or truncated file: empty, and written to S3 at the next commit even if nothing
    /// is written to it.
    pub(crate) fn empty(key: String, path: String, meta: Meta) -> Self {
        Self {
            key,
            path,
            size: 0,
            dirty: true,
            failed: false,
            mode: Mode::Stream {
                buf: PartBuf::default(),
                upload: None,
            },
            shown: Arc::new(std::sync::Mutex::new((0, meta))),
            writer_threads: Some(Vec::new()),
            meta,
            released: false,
            unlinked: false,
        }
    }

    /// Notes that thread `tid` (a FUSE request's pid) writes to the file.
    pub(crate) fn note_writer(&mut self, tid: u32) {
        if let Some(t) = &mut self.writer_threads
            && !t.contains(&tid)
        {
            if t.len() < MAX_WRITER_THREADS {
                t.push(tid);
            } else {
                self.writer_threads = None;
            }
        }
    }

    /// Whether a `close` by thread `tid` commits. Not when it is surely another process than
    /// every one that wrote since the last commit: a process that forks and execs (Python's
    /// `subprocess`, a shell) closes its copies of the descriptor in the child, and
    /// committing then would publish half a file and turn the writer's next write into a
    /// download of the object. The last release still commits. Whenever a thread's process
    /// cannot be told (it ended, it is outside this pid namespace), the close commits.
    pub(crate) fn flush_commits(&self, tid: u32) -> bool {
        let Some(writers) = &self.writer_threads else {
            return true;
        };
        if writers.is_empty() || tid == 0 {
            return true;
        }
        let Some(closer) = process_of(tid) else {
            return true;
        };
        for w in writers {
            match process_of(*w) {
                Some(p) if p != closer => {}
                _ => return true,
            }
        }
        tracing::debug!(key = %self.key, tid, "close by a process that did not write: left to the last release");
        false
    }

    /// Size and attributes as of the last change, shared with whoever asks without the lock.
    pub(crate) fn shown(&self) -> Arc<std::sync::Mutex<(u64, Meta)>> {
        self.shown.clone()
    }

    /// Publishes the current size and attributes to [`WriteState::shown`].
    fn publish(&self) {
        *self
            .shown
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (self.size, self.meta);
    }

    fn set_size(&mut self, size: u64) {
        self.size = size;
        self.publish();
    }

    /// The attributes the next upload stores.
    pub(crate) fn meta(&self) -> Meta {
        self.meta
    }

    /// Sets the attributes the next upload stores (the caller stored them in S3 already).
    pub(crate) fn set_meta(&mut self, meta: Meta) {
        self.meta = meta;
        self.publish();
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

    /// Moves the content to a staging file (downloading it when S3 holds it). A streamed
    /// upload in progress is abandoned, never completed: its parts are in the spill file,
    /// which becomes the staging file, and S3 keeps the previous object until the commit.
    async fn stage_locally(&mut self, fs: &S3Fs) -> Result<(), FsError> {
        self.settle_spill(fs).await?;
        let file = match std::mem::replace(&mut self.mode, Mode::Clean) {
            Mode::Staged(f) => {
                self.mode = Mode::Staged(f);
                return Ok(());
            }
            Mode::Stream {
                buf,
                upload: Some(up),
            } => {
                let sent = self.size - buf.len() as u64;
                // An append's copied start is not in the spill file: the object still has it.
                if let Err(e) = download_into(fs, &self.key, up.spill.file(), up.copied).await {
                    self.mode = Mode::Stream {
                        buf,
                        upload: Some(up),
                    };
                    return Err(e);
                }
                let spilled = up.spill.file().try_clone().and_then(|f| {
                    f.write_all_at(&buf, sent)?;
                    Ok(f)
                });
                abort_upload(fs, &self.key, up).await;
                match spilled {
                    Ok(f) => f,
                    Err(e) => {
                        self.failed = true;
                        return Err(e.into());
                    }
                }
            }
            Mode::Stream { buf, upload: None } => {
                let file = Self::staging_file(fs).and_then(|f| {
                    f.write_all_at(&buf, 0)?;
                    Ok(f)
                });
                match file {
                    Ok(f) => f,
                    Err(e) => {
                        self.mode = Mode::Stream { buf, upload: None };
                        return Err(e);
                    }
                }
            }
            Mode::Clean => {
                let file = Self::staging_file(fs)?;
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
                        self.set_size(off);
                        break;
                    }
                    file.write_all_at(&b, off)?;
                    off += b.len() as u64;
                }
                file
            }
        };
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
                buf: PartBuf::default(),
                upload: None,
            };
        }
        let mut sequential = matches!(self.mode, Mode::Stream { .. }) && offset == self.size;
        if !sequential && matches!(self.mode, Mode::Clean) && offset == self.size {
            sequential = self.start_append(fs).await;
        }
        if !sequential {
            self.stage_locally(fs).await?;
        }
        self.changed();
        if let Mode::Staged(f) = &self.mode {
            f.write_all_at(data, offset)?;
            self.set_size(self.size.max(end));
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
            buf.push(&rest[..take], part_size);
            rest = &rest[take..];
            self.size += take as u64;
            let full = (buf.len() == part_size).then(|| buf.take());
            // Shown before a full part waits for its upload slot.
            self.publish();
            if let Some(part) = full
                && let Err(e) = self.send_part(fs, part).await
            {
                self.fail(fs).await;
                return Err(e);
            }
        }
        Ok(len)
    }

    /// An append to an object of at least [`MIN_PART`] bytes: a multipart upload whose first
    /// parts are server-side copies of the object, after which the new data streams as
    /// parts of its own. Nothing of the object goes through the mount (appending a line to
    /// a 256 MiB log no longer downloads and uploads it). False when the object is too small
    /// or the server refuses (the caller stages the file instead).
    async fn start_append(&mut self, fs: &S3Fs) -> bool {
        let size = self.size;
        if !(MIN_PART..=MAX_COPY_PART * MAX_PARTS).contains(&size) {
            return false;
        }
        let key = self.key.clone();
        let Ok(spill) = Self::staging_file(fs) else {
            return false;
        };
        let meta = self.meta.touched(epoch_secs(SystemTime::now()));
        let id = match fs.client.create_multipart(&key, &meta).await {
            Ok(id) => id,
            Err(e) => {
                tracing::debug!(key, error = %e, "no multipart upload for the append: staging the file");
                return false;
            }
        };
        fs.journal_started(&key, &id);
        let mut parts = Vec::new();
        let mut start = 0;
        while start < size {
            let mut end = (start + MAX_COPY_PART).min(size);
            // No part but the last may be under MIN_PART: a short remainder joins this one.
            if size - end < MIN_PART {
                end = size;
            }
            let n = u32::try_from(parts.len() + 1).unwrap_or(u32::MAX);
            match fs
                .client
                .upload_part_copy(&key, &id, n, &key, start, end)
                .await
            {
                Ok(etag) => parts.push((n, etag)),
                Err(e) => {
                    tracing::debug!(key, error = %e, "the server did not copy the object into the append: staging the file");
                    if let Err(e) = fs.client.abort_multipart(&key, &id).await {
                        tracing::warn!(key, error = %e, "aborting the append's upload failed");
                    } else {
                        fs.journal_ended(&id);
                    }
                    return false;
                }
            }
            start = end;
        }
        tracing::debug!(
            key,
            size,
            parts = parts.len(),
            "appending: the object copied server-side"
        );
        let next = u32::try_from(parts.len() + 1).unwrap_or(u32::MAX);
        self.mode = Mode::Stream {
            buf: PartBuf::default(),
            upload: Some(Upload {
                id,
                next,
                parts,
                inflight: VecDeque::new(),
                spill: Spill::new(spill),
                copied: size,
            }),
        };
        true
    }

    /// Uploads one part, starting the multipart upload if needed; waits while
    /// `upload_concurrency` parts are already in flight (this bounds memory).
    async fn send_part(&mut self, fs: &S3Fs, part: Bytes) -> Result<(), FsError> {
        let key = self.key.clone();
        // The part ends where the content does.
        let at = self.size - part.len() as u64;
        let Mode::Stream { upload, .. } = &mut self.mode else {
            return Ok(());
        };
        if upload.is_none() {
            let spill = Self::staging_file(fs)?;
            let id = fs
                .client
                .create_multipart(&key, &self.meta.touched(epoch_secs(SystemTime::now())))
                .await
                .map_err(FsError::s3("CreateMultipartUpload", &key))?;
            fs.journal_started(&key, &id);
            *upload = Some(Upload {
                id,
                next: 1,
                parts: Vec::new(),
                inflight: VecDeque::new(),
                spill: Spill::new(spill),
                copied: 0,
            });
        }
        let Some(up) = upload.as_mut() else {
            return Ok(());
        };
        up.spill.write(part.clone(), at).await?;
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

    /// Waits until every part sent is in the spill file; a part that could not be written
    /// there fails the file as a failed upload does (its content can no longer be read).
    async fn settle_spill(&mut self, fs: &S3Fs) -> Result<(), FsError> {
        if let Mode::Stream {
            upload: Some(up), ..
        } = &mut self.mode
            && let Err(e) = up.spill.settle().await
        {
            self.fail(fs).await;
            return Err(e.into());
        }
        Ok(())
    }

    /// A streamed upload failed: abort it, and refuse further writes and commits.
    async fn fail(&mut self, fs: &S3Fs) {
        self.failed = true;
        if let Mode::Stream {
            upload: Some(up), ..
        } = std::mem::replace(&mut self.mode, Mode::Clean)
        {
            abort_upload(fs, &self.key, up).await;
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
        self.settle_spill(fs).await?;
        match &self.mode {
            Mode::Clean => fs
                .client
                .get_range(&self.key, offset, n)
                .await
                .map_err(FsError::s3("GetObject", &self.key)),
            Mode::Stream { buf, upload } => {
                // Sent parts are read from the spill file, the tail from memory.
                let tail_at = self.size - buf.len() as u64;
                let end = offset + n;
                let mut out = Vec::with_capacity(usize::try_from(n).map_err(|_| FsError::Invalid)?);
                if offset < tail_at
                    && let Some(up) = upload
                {
                    // An append's copied start from the object, the parts sent from the spill.
                    let copied_end = end.min(tail_at).min(up.copied);
                    if offset < copied_end {
                        let b = fs
                            .client
                            .get_range(&self.key, offset, copied_end - offset)
                            .await
                            .map_err(FsError::s3("GetObject", &self.key))?;
                        if b.len() as u64 != copied_end - offset {
                            return Err(FsError::s3("GetObject", &self.key)(S3Error::Malformed {
                                what: "the object changed under an append",
                            }));
                        }
                        out.extend_from_slice(&b);
                    }
                    let from = offset.max(up.copied);
                    let to = end.min(tail_at);
                    if from < to {
                        let at = out.len();
                        let k = usize::try_from(to - from).map_err(|_| FsError::Invalid)?;
                        out.resize(at + k, 0);
                        up.spill.file().read_exact_at(&mut out[at..], from)?;
                    }
                }
                if end > tail_at {
                    let s = usize::try_from(offset.max(tail_at) - tail_at)
                        .map_err(|_| FsError::Invalid)?;
                    let e = usize::try_from(end - tail_at).map_err(|_| FsError::Invalid)?;
                    out.extend_from_slice(&buf[s.min(buf.len())..e.min(buf.len())]);
                }
                Ok(Bytes::from(out))
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
                buf: PartBuf::default(),
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
        self.set_size(size);
        self.changed();
        Ok(())
    }

    /// The content changed now: the next commit writes it, and until then a `stat` of the
    /// open file shows the new mtime and ctime. The last release may commit after `close`
    /// returned (a file only emptied is not committed at `flush`), and a `stat` in between
    /// must not show the times from before the change.
    fn changed(&mut self) {
        self.dirty = true;
        self.meta = self.meta.touched(epoch_secs(SystemTime::now()));
        self.publish();
    }

    /// Makes S3 hold the current content. Returns after S3 acknowledged it.
    pub(crate) async fn commit(&mut self, fs: &S3Fs) -> Result<(), FsError> {
        self.check_failed()?;
        if !self.dirty || self.unlinked {
            return Ok(());
        }
        let key = self.key.clone();
        let meta = self.meta.touched(epoch_secs(SystemTime::now()));
        let result = match &mut self.mode {
            Mode::Clean => Ok(()),
            Mode::Stream { buf, upload: None } => fs
                .client
                .put_object_meta(&key, Bytes::copy_from_slice(&buf[..]), &meta)
                .await
                .map_err(FsError::s3("PutObject", &key)),
            Mode::Stream {
                buf,
                upload: Some(_),
            } => {
                let tail = buf.take();
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
            Mode::Staged(f) => super::upload::upload_file(fs, &key, f, self.size, &meta).await,
        };
        result?;
        if let Mode::Stream { .. } = self.mode {
            self.mode = Mode::Clean;
        }
        self.dirty = false;
        self.meta = meta;
        self.publish();
        if let Some(t) = &mut self.writer_threads {
            t.clear();
        } else {
            self.writer_threads = Some(Vec::new());
        }
        fs.cache_put(
            &self.path,
            Known::File {
                size: self.size,
                mtime: SystemTime::now(),
                meta,
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
            .map_err(FsError::s3("CompleteMultipartUpload", &key))?;
        fs.journal_ended(&up.id);
        Ok(())
    }

    /// The object key this state commits to.
    pub(crate) fn key(&self) -> &str {
        &self.key
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

    /// The file's name was removed while it is open: as on a local filesystem, what is
    /// still written goes nowhere, and no commit brings the object back.
    pub(crate) async fn unlink(&mut self, fs: &S3Fs) {
        // The content moves to local staging (aborting a streamed upload) while the
        // object still exists, so later reads and writes of the open file keep working.
        if let Err(e) = self.stage_locally(fs).await {
            tracing::warn!(key = %self.key, error = %crate::fuse::chain(&e), "open file removed: its content is no longer readable");
        }
        self.unlinked = true;
        self.dirty = false;
    }

    /// Marks the state as left by its last handle.
    pub(crate) fn set_released(&mut self) {
        self.released = true;
    }

    /// Whether the last handle is gone (see [`Self::set_released`]).
    pub(crate) fn is_released(&self) -> bool {
        self.released
    }

    /// Whether the only change is an emptying (a new file, `O_TRUNC`) with nothing written
    /// since: `close` of one of several descriptors (`cmd > file` closes a duplicate first)
    /// leaves that to the last release, so the previous object stays until data comes.
    pub(crate) fn only_emptied(&self) -> bool {
        self.is_dirty() && self.size == 0 && matches!(self.mode, Mode::Stream { upload: None, .. })
    }
}

/// Abandons a streamed upload: its part uploads stop and S3 discards the parts.
async fn abort_upload(fs: &S3Fs, key: &str, up: Upload) {
    for h in &up.inflight {
        h.abort();
    }
    match fs.client.abort_multipart(key, &up.id).await {
        Ok(()) => fs.journal_ended(&up.id),
        Err(e) => {
            tracing::warn!(%key, error = %e, "abort of a multipart upload failed");
        }
    }
}
