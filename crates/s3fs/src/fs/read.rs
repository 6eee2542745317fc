//! Reads: a prefetcher of concurrent ranged GETs ahead of a sequential reader, exact ranged
//! GETs for a random reader.
//!
//! An object is cut into parts of [`PART`] bytes at fixed offsets (part `i` is
//! `[i·PART, (i+1)·PART)`). A sequential reader (its read falls in a part already fetched
//! or in flight, or starts within [`NEAR`] of where its last read ended, or of 0 for the
//! first read) has the parts it reads fetched and up to `window` parts after them, each by a
//! ranged GET of its own, so several requests are in flight ahead of it. The window starts at
//! one part and doubles each time the reader moves into a new part, up to `readahead / PART`
//! parts; a read elsewhere (a seek) drops every part and starts again at one. Parts behind the
//! reader are dropped except the one just before it, which serves the kernel's readahead
//! requests that arrive out of order across FUSE threads.
//!
//! Memory: a part ahead of the ones read is fetched only while the mount-wide budget
//! (`read_memory`) has room for it; the parts a read needs are always fetched. So memory is
//! bounded per open file (window + 3 parts) and in total (the budget plus three parts per
//! reader at work).
//!
//! Many FUSE threads may read one handle at once: the part table is locked only to look parts
//! up and start their GETs, never across a request. A read is answered with a slice of its
//! part's buffer (no copy) unless it spans two parts. A part whose GET fails is dropped and the
//! read becomes an exact ranged GET, which fails (or, after the client's retries, succeeds) as
//! any read does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;

use super::{Handle, S3Fs, lock};
use crate::client::S3Client;
use crate::error::FsError;

/// Size of a prefetched part, and of the ranged GET that fetches it.
pub(crate) const PART: u64 = 8 << 20;
/// A read this close to where the last one ended (or to 0, for the first) is sequential.
const NEAR: u64 = 4 << 20;
/// Units of the mount-wide read budget ([`Semaphore`] permits), in bytes.
pub(crate) const BUDGET_UNIT: usize = 1 << 20;

/// A part's state: `None` while its GET is in flight, then its data, or `None` inside when
/// the GET failed.
type PartData = Option<Option<Bytes>>;

struct Part {
    rx: watch::Receiver<PartData>,
    task: JoinHandle<()>,
    /// Its share of the mount's read budget, given back when the part is dropped.
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Part {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Part {
    fn failed(&self) -> bool {
        matches!(*self.rx.borrow(), Some(None))
    }
}

struct Prefetch {
    parts: BTreeMap<u64, Part>,
    /// Parts fetched ahead of the current one.
    window: u64,
    /// The furthest part a sequential read has reached.
    current: Option<u64>,
    /// Where the furthest read of the current run ended.
    last_end: Option<u64>,
}

/// Per-handle read state.
pub(crate) struct ReadState {
    key: String,
    size: u64,
    max_window: u64,
    budget: Arc<Semaphore>,
    pool: BufPool,
    inner: Mutex<Prefetch>,
}

/// The most part buffers the mount keeps for reuse once their data is no longer read (beyond
/// the read budget, which counts the parts in use: 32 MiB at most, idle).
const POOL_MAX: usize = 4;

/// Part buffers of the mount's readers, given back when the last slice of a part is
/// dropped and reused by the next part: a fresh 8 MiB allocation per part is mapped and
/// faulted in page by page (a sixth of a sequential read's CPU), a reused one is not.
#[derive(Clone, Default)]
pub(crate) struct BufPool(Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

/// A part's buffer, back to its pool (if it still exists) when dropped.
struct Pooled {
    buf: Vec<u8>,
    pool: std::sync::Weak<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade()
            && let Ok(mut free) = pool.lock()
            && free.len() < POOL_MAX
        {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            free.push(buf);
        }
    }
}

impl BufPool {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .ok()
            .and_then(|mut f| f.pop())
            .unwrap_or_default()
    }

    fn wrap(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            pool: Arc::downgrade(&self.0),
        })
    }
}

impl ReadState {
    pub(crate) fn new(
        key: String,
        size: u64,
        readahead: usize,
        budget: Arc<Semaphore>,
        pool: BufPool,
    ) -> Self {
        Self {
            key,
            size,
            max_window: (readahead as u64 / PART).max(1),
            budget,
            pool,
            inner: Mutex::new(Prefetch {
                parts: BTreeMap::new(),
                window: 1,
                current: None,
                last_end: None,
            }),
        }
    }

    fn part_range(&self, i: u64) -> (u64, u64) {
        let start = i * PART;
        (start, (start + PART).min(self.size))
    }

    /// Starts the GET of part `i` unless it is there (or in flight). A part ahead of what is
    /// read (`needed` false) only starts when the budget has room; false when it did not.
    fn ensure(&self, p: &mut Prefetch, client: &S3Client, i: u64, needed: bool) -> bool {
        if p.parts.get(&i).is_some_and(|part| !part.failed()) {
            return true;
        }
        let (start, end) = self.part_range(i);
        let units = u32::try_from((end - start).div_ceil(BUDGET_UNIT as u64)).unwrap_or(u32::MAX);
        let permit = match self.budget.clone().try_acquire_many_owned(units) {
            Ok(permit) => Some(permit),
            Err(_) if needed => None,
            Err(_) => return false,
        };
        let (tx, rx) = watch::channel(None);
        let (client, key) = (client.clone(), self.key.clone());
        let pool = self.pool.clone();
        let task = tokio::spawn(async move {
            let buf = pool.take();
            let got = client.get_range_into(&key, start, end - start, buf).await;
            let data = match got.map(|b| pool.wrap(b)) {
                Ok(b) if b.len() as u64 == end - start => Some(b),
                Ok(b) => {
                    tracing::debug!(key, start, got = b.len(), "part shorter than asked");
                    None
                }
                Err(e) => {
                    tracing::debug!(key, start, error = %e, "part GET failed");
                    None
                }
            };
            let _ = tx.send(Some(data));
        });
        tracing::trace!(key = %self.key, part = i, needed, "part GET started");
        p.parts.insert(
            i,
            Part {
                rx,
                task,
                _permit: permit,
            },
        );
        true
    }

    /// The parts `first..=last` a sequential read needs, after starting what it and the
    /// window need; `None` for a random read (every part dropped).
    fn plan(
        &self,
        client: &S3Client,
        offset: u64,
        end: u64,
    ) -> Option<Vec<watch::Receiver<PartData>>> {
        let (first, last) = (offset / PART, (end - 1) / PART);
        let mut p = lock(&self.inner);
        let sequential = p.parts.contains_key(&first)
            || p.last_end
                .map_or(offset < NEAR, |l| offset.abs_diff(l) <= NEAR);
        if !sequential {
            p.parts.clear();
            p.window = 1;
            p.current = None;
            p.last_end = Some(end);
            return None;
        }
        p.last_end = Some(p.last_end.map_or(end, |l| l.max(end)));
        let current = match p.current {
            Some(c) if last <= c => c,
            Some(_) => {
                p.window = (p.window * 2).min(self.max_window);
                last
            }
            None => last,
        };
        p.current = Some(current);
        // Keep the part before the current one, and any part this read still needs.
        let keep_from = current.saturating_sub(1).min(first);
        p.parts = p.parts.split_off(&keep_from);
        for i in first..=last {
            self.ensure(&mut p, client, i, true);
        }
        let last_part = (self.size - 1) / PART;
        for i in last + 1..=(current + p.window).min(last_part) {
            if !self.ensure(&mut p, client, i, false) {
                break;
            }
        }
        Some(
            (first..=last)
                .filter_map(|i| p.parts.get(&i).map(|part| part.rx.clone()))
                .collect(),
        )
    }

    /// Reads up to `len` bytes at `offset` (fewer at end of file).
    pub(crate) async fn read(
        &self,
        client: &S3Client,
        offset: u64,
        len: u32,
    ) -> Result<Bytes, FsError> {
        if offset >= self.size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = (offset + u64::from(len)).min(self.size);
        if let Some(waits) = self.plan(client, offset, end)
            && let Some(b) = self.assemble(waits, offset, end).await
        {
            return Ok(b);
        }
        tracing::debug!(key = %self.key, offset, len = end - offset, "ranged GET");
        client
            .get_range(&self.key, offset, end - offset)
            .await
            .map_err(FsError::s3("GetObject", &self.key))
    }

    /// `[offset, end)` out of the parts that cover it, once they arrived; `None` when one
    /// failed (or was dropped by a seek on another thread).
    async fn assemble(
        &self,
        waits: Vec<watch::Receiver<PartData>>,
        offset: u64,
        end: u64,
    ) -> Option<Bytes> {
        let mut pieces = Vec::with_capacity(waits.len());
        for mut rx in waits {
            let data = rx.wait_for(Option::is_some).await.ok()?.clone().flatten()?;
            pieces.push(data);
        }
        let mut at = (offset / PART) * PART;
        let placed = pieces.iter().map(|p| {
            let start = at;
            at += p.len() as u64;
            (start, p)
        });
        gather(placed, offset, end)
    }
}

/// `[start, end)` out of `pieces` (each at its offset, in order): a slice of the one piece
/// that holds it all, else a copy; `None` unless they cover it whole.
pub(super) fn gather<'a>(
    pieces: impl IntoIterator<Item = (u64, &'a Bytes)>,
    start: u64,
    end: u64,
) -> Option<Bytes> {
    let mut covering = pieces
        .into_iter()
        .filter(|(at, p)| at + p.len() as u64 > start && *at < end)
        .peekable();
    let (first_at, first) = covering.next()?;
    let s = usize::try_from(start.checked_sub(first_at)?).ok()?;
    let first_end = first_at + first.len() as u64;
    if end <= first_end {
        let e = usize::try_from(end - first_at).ok()?;
        return Some(first.slice(s..e));
    }
    let mut out = BytesMut::with_capacity(usize::try_from(end - start).ok()?);
    out.extend_from_slice(first.get(s..)?);
    let mut next_at = first_end;
    for (at, piece) in covering {
        if at != next_at {
            return None;
        }
        let e = usize::try_from(end.min(at + piece.len() as u64) - at).ok()?;
        out.extend_from_slice(piece.get(..e)?);
        next_at = at + piece.len() as u64;
    }
    (out.len() as u64 == end - start).then(|| out.freeze())
}

impl S3Fs {
    /// `read(fh, offset, len)`: from the open writer's data when the file is being written,
    /// else from S3.
    pub(crate) async fn read(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        len: u32,
    ) -> Result<Bytes, FsError> {
        match &*self.handle(fh)? {
            Handle::Read(state) => {
                if let Some(w) = self.writer_of(ino) {
                    return w.lock().await.read(self, offset, len).await;
                }
                state.read(&self.client, offset, len).await
            }
            Handle::ReadStreamed(state) => {
                if let Some(w) = self.writer_of(ino) {
                    return w.lock().await.read(self, offset, len).await;
                }
                state.lock().await.read(&self.client, offset, len).await
            }
            Handle::Write { state, .. } => state.lock().await.read(self, offset, len).await,
            Handle::Dir(_) => Err(FsError::IsDir),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_slices_one_piece_and_copies_across_pieces() {
        let a = Bytes::from_static(b"abcd");
        let b = Bytes::from_static(b"efgh");
        let pieces = [(10, &a), (14, &b)];
        let one = gather(pieces, 11, 13).unwrap();
        assert_eq!(&one[..], b"bc");
        assert_eq!(one.as_ptr(), a[1..].as_ptr(), "a slice, not a copy");
        assert_eq!(&gather(pieces, 12, 16).unwrap()[..], b"cdef");
        assert_eq!(gather(pieces, 12, 19), None, "past the last piece");
        assert_eq!(gather(pieces, 8, 12), None, "before the first");
        assert_eq!(gather([(10, &a), (15, &b)], 12, 16), None, "a gap");
    }

    #[test]
    fn part_buffers_return_to_their_pool_when_the_last_slice_goes() {
        let pool = BufPool::default();
        let parts: Vec<Bytes> = (0..POOL_MAX + 2)
            .map(|_| pool.wrap(vec![7u8; 1 << 20]))
            .collect();
        let slice = parts[0].slice(10..20);
        drop(parts);
        // The first part is still read through its slice; the pool keeps at most POOL_MAX.
        assert_eq!(pool.0.lock().unwrap().len(), POOL_MAX);
        drop(slice);
        assert_eq!(pool.0.lock().unwrap().len(), POOL_MAX);
        let reused = pool.take();
        assert!(reused.capacity() >= 1 << 20 && reused.is_empty());
        // A buffer outliving its reader's pool is simply freed.
        let orphan = pool.wrap(vec![1, 2, 3]);
        drop(pool);
        assert_eq!(&orphan[..], &[1, 2, 3]);
    }

    #[test]
    fn parts_are_fixed_ranges_cut_at_the_end_of_the_object() {
        let s = ReadState::new(
            "k".into(),
            2 * PART + 5,
            64 << 20,
            Arc::new(Semaphore::new(1)),
            BufPool::default(),
        );
        assert_eq!(s.part_range(0), (0, PART));
        assert_eq!(s.part_range(2), (2 * PART, 2 * PART + 5));
        assert_eq!(s.max_window, 8);
        let s = ReadState::new(
            "k".into(),
            1,
            1 << 20,
            Arc::new(Semaphore::new(1)),
            BufPool::default(),
        );
        assert_eq!(s.max_window, 1);
    }
}
