//! The filesystem core: async operations on paths, independent of FUSE.
//!
//! Files are objects; directories are `dir/` marker objects or are implied by keys below
//! them. [`S3Fs`] keeps an inode table, a stat and type cache, and the open handles. Every
//! method is async and runs on the mount's tokio runtime; the FUSE adapter blocks on them.

mod attr_memo;
mod cache;
mod dir;
mod dir_times;
mod file_ops;
pub(crate) mod inodes;
mod listing;
mod meta;
mod namespace;
mod read;
mod read_stream;
mod special;
mod spill;
mod upload;
mod write;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use cache::{Cache, Known};
use inodes::{Inodes, Kind};

use crate::client::{Meta, S3Client};
use crate::config::MountConfig;
use crate::error::FsError;

pub(crate) use meta::MetaChange;
pub(crate) use write::WriteState;

/// Longest S3 key, in bytes.
const MAX_KEY: usize = 1024;
/// Longest name in a directory, in bytes.
const MAX_NAME: usize = 255;
/// A directory known whole with at most this many entries (one listing page) is listed
/// again when a name in it is not in the caches.
const RELIST_AT_MOST: usize = 1000;

/// Attributes of one entry, before they become a FUSE `FileAttr`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attr {
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
    /// Last-Modified (or the mount time for directories): the times the object does not
    /// store itself default to it.
    pub mtime: SystemTime,
    /// The stored attributes; missing ones are the mount's defaults.
    pub meta: Meta,
}

/// One file's write state, shared by its write handles.
pub(crate) type SharedWrite = Arc<tokio::sync::Mutex<WriteState>>;
/// A write state's size and attributes as of its last change ([`WriteState::shown`]).
type Shown = Arc<Mutex<(u64, Meta)>>;

/// An open file or directory.
pub(crate) enum Handle {
    /// Opened read-only, with its readahead state: the prefetcher's parts, or one stream.
    Read(read::ReadState),
    /// Opened read-only on a mount with `ReadStrategy::Streamed`.
    ReadStreamed(tokio::sync::Mutex<read_stream::StreamReadState>),
    /// Opened for writing: shares one [`WriteState`] per inode with other writers.
    Write {
        ino: u64,
        state: Arc<tokio::sync::Mutex<WriteState>>,
    },
    /// An open directory: its listing, taken at the first readdir.
    Dir(tokio::sync::Mutex<Option<dir::Listing>>),
}

/// The filesystem.
pub(crate) struct S3Fs {
    pub(crate) client: S3Client,
    pub(crate) cfg: MountConfig,
    prefix: String,
    inodes: Mutex<Inodes>,
    cache: Mutex<Cache>,
    /// Stored attributes by object version (stored attributes only).
    attr_memo: Mutex<attr_memo::AttrMemo>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    /// Open write states by inode, with the number of handles using each and the size and
    /// attributes each shows without its lock.
    writers: Mutex<HashMap<u64, (SharedWrite, usize, Shown)>>,
    next_fh: AtomicU64,
    /// Multipart uploads in progress, for the next mount should this one die.
    journal: Option<crate::journal::Journal>,
    /// Directory times not yet written to their markers.
    dir_times: dir_times::DirTimes,
    /// The memory prefetched reads may hold ahead of their readers, mount-wide
    /// ([`read::BUDGET_UNIT`]s).
    read_budget: Arc<tokio::sync::Semaphore>,
    /// Part buffers of finished prefetched parts, for the next ones.
    read_pool: read::BufPool,
    /// Shown as the mtime of directories, which S3 does not have.
    pub(crate) mount_time: SystemTime,
}

/// Locks a std mutex, recovering the data if a holder panicked (the tables stay usable).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl S3Fs {
    pub(crate) fn new(
        client: S3Client,
        cfg: MountConfig,
        journal: Option<crate::journal::Journal>,
    ) -> Self {
        Self {
            journal,
            client,
            prefix: cfg.key_prefix(),
            inodes: Mutex::new(Inodes::new()),
            cache: Mutex::new(Cache::new(cfg.stat_cache_ttl, cfg.type_cache_ttl)),
            attr_memo: Mutex::new(attr_memo::AttrMemo::default()),
            handles: Mutex::new(HashMap::new()),
            writers: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            dir_times: dir_times::DirTimes::default(),
            read_budget: Arc::new(tokio::sync::Semaphore::new(
                (cfg.read_memory / read::BUDGET_UNIT).max(1),
            )),
            read_pool: read::BufPool::default(),
            mount_time: SystemTime::now(),
            cfg,
        }
    }

    /// Object key of a file path.
    pub(crate) fn file_key(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    /// Key prefix of a directory path (its marker key), ending in `/` except for the root of
    /// a whole-bucket mount.
    pub(crate) fn dir_key(&self, path: &str) -> String {
        if path.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}{path}/", self.prefix)
        }
    }

    /// Records a multipart upload started (see [`crate::journal`]).
    pub(crate) fn journal_started(&self, key: &str, id: &str) {
        if let Some(j) = &self.journal {
            j.started(key, id);
        }
    }

    /// Records a multipart upload completed or aborted.
    pub(crate) fn journal_ended(&self, id: &str) {
        if let Some(j) = &self.journal {
            j.ended(id);
        }
    }

    pub(crate) fn check_writable(&self) -> Result<(), FsError> {
        if self.cfg.read_only {
            Err(FsError::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// Path of `ino`, or `ENOENT` for an inode this mount never handed out.
    pub(crate) fn path_of(&self, ino: u64) -> Result<(String, Kind), FsError> {
        lock(&self.inodes).get(ino).ok_or(FsError::NotFound)
    }

    /// Path of `name` in directory `parent`, validated.
    pub(crate) fn child_path(
        &self,
        parent: u64,
        name: &std::ffi::OsStr,
    ) -> Result<String, FsError> {
        let (dir, kind) = self.path_of(parent)?;
        if kind != Kind::Dir {
            return Err(FsError::NotDir);
        }
        let name = name.to_str().ok_or(FsError::Invalid)?;
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(FsError::Invalid);
        }
        if name.len() > MAX_NAME {
            return Err(FsError::NameTooLong);
        }
        let path = inodes::join(&dir, name);
        if self.prefix.len() + path.len() + 1 > MAX_KEY {
            return Err(FsError::NameTooLong);
        }
        Ok(path)
    }

    pub(crate) fn cache_put(&self, path: &str, known: Known) {
        lock(&self.cache).put(path, known);
    }

    /// Directory `path`'s whole content (`entries` names) is in the type cache.
    pub(crate) fn cache_set_complete(&self, path: &str, entries: usize, since: std::time::Instant) {
        lock(&self.cache).set_complete(path, entries, since);
    }

    /// Records what a listing said; with uniform attributes that is all there is to know.
    pub(crate) fn cache_put_listed(&self, path: &str, known: Known, etag: Option<String>) {
        if self.cfg.uniform() {
            lock(&self.cache).put(path, known);
        } else {
            lock(&self.cache).put_listed(path, known, etag);
        }
    }

    /// The stored attributes of file `path` remembered for the version its last listing
    /// (within the type TTL) showed.
    fn recall_listed(&self, path: &str) -> Option<Known> {
        let (size, mtime, etag) = {
            let cache = lock(&self.cache);
            let (size, mtime, etag) = cache.listed_version(path)?;
            (size, mtime, etag.to_string())
        };
        self.recall_attrs(path, &etag, size, mtime)
    }

    /// What the caches vouch for about `path`, without asking S3.
    pub(crate) fn cache_get(&self, path: &str) -> Option<Known> {
        lock(&self.cache).get(path)
    }

    pub(crate) fn cache_invalidate(&self, path: &str) {
        lock(&self.cache).invalidate_tree(path);
        lock(&self.attr_memo).forget(path);
    }

    /// The stored attributes of file `path` as remembered for the version a listing shows
    /// (ETag, size, Last-Modified), put into the stat cache; `None` when not remembered.
    pub(crate) fn recall_attrs(
        &self,
        path: &str,
        etag: &str,
        size: u64,
        mtime: SystemTime,
    ) -> Option<Known> {
        let (mtime, meta) = lock(&self.attr_memo).recall(path, etag, size, mtime)?;
        let known = Known::File { size, mtime, meta };
        self.cache_put(path, known);
        Some(known)
    }

    /// What a HEAD of file `path` told, remembered by version when the server's clock had
    /// settled past its Last-Modified (stored attributes only).
    pub(crate) fn file_headed(&self, path: &str, m: crate::client::ObjectMeta) -> Known {
        let uniform = self.cfg.uniform();
        if m.settled && !uniform {
            lock(&self.attr_memo).remember(path, &m.etag, m.size, m.mtime, m.meta);
        }
        Known::File {
            size: m.size,
            mtime: m.mtime,
            meta: if uniform { Meta::default() } else { m.meta },
        }
    }

    pub(crate) fn ino_for(&self, path: &str, kind: Kind) -> u64 {
        lock(&self.inodes).get_or_insert(path, kind)
    }

    pub(crate) fn dir_attr(&self, ino: u64, meta: Meta) -> Attr {
        Attr {
            ino,
            kind: Kind::Dir,
            size: 0,
            mtime: self.mount_time,
            meta,
        }
    }

    /// What `path` is, from the open writers, the caches, or S3 (HEAD of the file key and a
    /// one-key listing under the directory prefix, in parallel), with a directory's pending
    /// times.
    pub(crate) async fn resolve(&self, path: &str) -> Result<Known, FsError> {
        let known = self.resolve_stored(path).await?;
        Ok(self.with_dir_times(path, known))
    }

    /// [`Self::resolve`] without pending directory times.
    async fn resolve_stored(&self, path: &str) -> Result<Known, FsError> {
        if path.is_empty() {
            return Ok(Known::Dir(Meta::default()));
        }
        if let Some((size, meta)) = self.open_writer_state(path).await {
            return Ok(Known::File {
                size,
                mtime: SystemTime::now(),
                meta,
            });
        }
        if let Some(k) = lock(&self.cache).get(path) {
            return Ok(k);
        }
        if !self.cfg.uniform()
            && let Some(k) = self.recall_listed(path)
        {
            return Ok(k);
        }
        // A directory whose whole listing was known (one being filled: creates look up each
        // new name first) is listed again, one request for all its names, rather than asking
        // about this one name with two.
        let parent = inodes::parent_of(path);
        // With stored attributes a listing cannot tell a name that exists (a HEAD still has
        // to), so only a new name is worth it there, or a file whose attributes are
        // remembered for the version the listing will show.
        let small = {
            let cache = lock(&self.cache);
            cache
                .was_complete(parent)
                .is_some_and(|n| n <= RELIST_AT_MOST)
                && (self.cfg.uniform()
                    || !cache.was_present(path)
                    || lock(&self.attr_memo).knows(path))
        };
        let pino = if small {
            self.inodes().ino_of(parent)
        } else {
            None
        };
        if let Some(pino) = pino
            && self.list_dir(pino).await.is_ok()
        {
            if let Some(k) = lock(&self.cache).get(path) {
                return Ok(k);
            }
            if let Some(k) = self.recall_listed(path) {
                return Ok(k);
            }
        }
        let key = self.file_key(path);
        let dkey = self.dir_key(path);
        // Both at once, but a listing that shows the directory decides alone: the HEAD's
        // answer (or its retries: some servers answer 500 for the key of a directory) is not
        // waited for.
        let head = self.client.head_object(&key);
        tokio::pin!(head);
        let mut headed = None;
        let list = {
            let list = self.client.list_page(&dkey, None, None, 1);
            tokio::pin!(list);
            loop {
                tokio::select! {
                    l = &mut list => break l,
                    h = &mut head, if headed.is_none() => headed = Some(h),
                }
            }
        };
        let list = list.map_err(FsError::s3("ListObjectsV2", &dkey))?;
        // A directory wins over a file of the same name: both cannot be shown.
        let uniform = self.cfg.uniform();
        let known = if list.objects.first().is_some_and(|o| o.key == dkey) && !uniform {
            // The marker carries the directory's attributes.
            let marker = self.client.head_object(&dkey).await;
            let marker = marker.map_err(FsError::s3("HeadObject", &dkey))?;
            Known::Dir(marker.map(|m| m.meta).unwrap_or_default())
        } else if !list.objects.is_empty() || !list.prefixes.is_empty() {
            Known::Dir(Meta::default())
        } else {
            let head = match headed {
                Some(h) => h,
                None => head.await,
            };
            match head.map_err(FsError::s3("HeadObject", &key))? {
                Some(m) => self.file_headed(path, m),
                None => Known::Absent,
            }
        };
        self.cache_put(path, known);
        Ok(known)
    }

    /// `lookup(parent, name)`.
    pub(crate) async fn lookup(
        &self,
        parent: u64,
        name: &std::ffi::OsStr,
    ) -> Result<Attr, FsError> {
        let path = self.child_path(parent, name)?;
        self.attr_of_path(&path).await
    }

    async fn attr_of_path(&self, path: &str) -> Result<Attr, FsError> {
        match self.resolve(path).await? {
            Known::Absent => Err(FsError::NotFound),
            Known::Dir(meta) => Ok(self.dir_attr(self.ino_for(path, Kind::Dir), meta)),
            Known::File { size, mtime, meta } => Ok(Attr {
                ino: self.ino_for(path, Kind::File),
                kind: Kind::File,
                size,
                mtime,
                meta,
            }),
        }
    }

    /// `getattr(ino)`.
    pub(crate) async fn getattr(&self, ino: u64) -> Result<Attr, FsError> {
        let (path, _) = self.path_of(ino)?;
        let attr = self.attr_of_path(&path).await?;
        if attr.ino != ino {
            return Err(FsError::NotFound);
        }
        Ok(attr)
    }

    pub(crate) fn new_fh(&self, handle: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(fh, Arc::new(handle));
        fh
    }

    pub(crate) fn handle(&self, fh: u64) -> Result<Arc<Handle>, FsError> {
        lock(&self.handles)
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle)
    }

    pub(crate) fn take_handle(&self, fh: u64) -> Option<Arc<Handle>> {
        lock(&self.handles).remove(&fh)
    }

    /// The write state shared by all writers of `ino`, if a writer has it open.
    pub(crate) fn writer_of(&self, ino: u64) -> Option<Arc<tokio::sync::Mutex<WriteState>>> {
        lock(&self.writers).get(&ino).map(|(s, _, _)| s.clone())
    }

    /// Size and attributes of `path` while a writer has it open, without waiting for the
    /// write state (a write may hold it while it waits for an upload slot).
    pub(crate) async fn open_writer_state(&self, path: &str) -> Option<(u64, Meta)> {
        let ino = lock(&self.inodes).ino_of(path)?;
        let shown = lock(&self.writers).get(&ino).map(|(_, _, s)| s.clone())?;
        Some(*lock(&shown))
    }

    /// Registers one more writer of `ino`, creating its state with `make` if it is the first.
    pub(crate) fn attach_writer(
        &self,
        ino: u64,
        make: impl FnOnce() -> WriteState,
    ) -> Arc<tokio::sync::Mutex<WriteState>> {
        let mut w = lock(&self.writers);
        let entry = w.entry(ino).or_insert_with(|| {
            let state = make();
            let shown = state.shown();
            (Arc::new(tokio::sync::Mutex::new(state)), 0, shown)
        });
        entry.1 += 1;
        entry.0.clone()
    }

    /// One writer of `ino` is gone; returns true when it was the last.
    pub(crate) fn detach_writer(&self, ino: u64) -> bool {
        let mut w = lock(&self.writers);
        match w.get_mut(&ino) {
            Some(e) if e.1 > 1 => {
                e.1 -= 1;
                false
            }
            Some(_) => {
                w.remove(&ino);
                true
            }
            None => true,
        }
    }

    /// Write states of files under directory `path` that are open and not yet in S3.
    pub(crate) fn writers_under(&self, path: &str) -> Vec<(String, u64)> {
        let w = lock(&self.writers);
        let inodes = lock(&self.inodes);
        w.keys()
            .filter_map(|ino| inodes.get(*ino).map(|(p, _)| (p, *ino)))
            .filter(|(p, _)| inodes::parent_of(p) == path)
            .collect()
    }

    /// The kernel was handed `attr`'s inode as `name` in directory `parent` (an entry
    /// reply): one more lookup to forget.
    pub(crate) fn looked_up(&self, attr: &Attr, parent: u64, name: &std::ffi::OsStr) {
        if let Ok(path) = self.child_path(parent, name) {
            lock(&self.inodes).looked_up(attr.ino, &path, attr.kind);
        }
    }

    /// FORGET: the kernel dropped `n` lookups of `ino`. An inode with a writer still attached
    /// (its release may still be committing) stays in the table: a rare race that keeps one
    /// entry until the mount ends.
    pub(crate) fn forget(&self, ino: u64, n: u64) {
        if lock(&self.writers).contains_key(&ino) {
            return;
        }
        lock(&self.inodes).forget(ino, n);
    }

    pub(crate) fn inodes(&self) -> MutexGuard<'_, Inodes> {
        lock(&self.inodes)
    }
}
