//! The memory and the local copy of a streamed upload's parts.
//!
//! [`PartBuf`] is the part being filled: small while a file is small (it starts at 64 KiB
//! and doubles), and once it is to hold a whole part, one allocation whose data starts on a
//! page boundary. [`Spill`] is the local file every part sent is also written to (parts
//! cannot be read back from S3 before the upload completes): whole, page-aligned parts go
//! to it with `O_DIRECT`, so the copy never passes through the page cache. That copy was
//! half the mount's CPU on a large sequential write (the page cache's fresh pages cost a
//! fault each on a virtual machine); with `O_DIRECT` the disk reads the part buffer itself.
//! Where `O_DIRECT` cannot be had (a filesystem without it, no `/proc`), or for a part that
//! is not aligned (the last, short one; an append's parts after a copied start), the write
//! is buffered as before.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::Arc;

use bytes::Bytes;
use tokio::task::JoinHandle;

/// The alignment `O_DIRECT` needs of the buffer, the length and the offset (a page: more
/// than any block device here asks).
const ALIGN: usize = 4096;

/// Parts being written at once, on blocking threads beside their uploads (each holds its
/// part's memory until written).
const IN_FLIGHT: usize = 2;

/// The smallest allocation of a growing part buffer.
const FIRST_ALLOC: usize = 64 * 1024;

/// The bytes of the part being filled.
#[derive(Default)]
pub(crate) struct PartBuf {
    vec: Vec<u8>,
    /// Where the data starts in `vec`: padding that puts it on a page boundary.
    pad: usize,
}

impl std::ops::Deref for PartBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.vec[self.pad..]
    }
}

impl PartBuf {
    /// Room for data without another allocation.
    fn capacity(&self) -> usize {
        self.vec.capacity() - self.pad
    }

    /// Appends `data`; the buffer never grows past `part_size` (the caller sends the part
    /// when it is full). Memory is the data rounded up to the next doubling, and a whole
    /// part (plus at most a page) once it holds more than half of one.
    pub(crate) fn push(&mut self, data: &[u8], part_size: usize) {
        let need = self.len() + data.len();
        if self.capacity() < need {
            let target = (self.capacity() * 2)
                .max(need)
                .max(FIRST_ALLOC)
                .min(part_size);
            if target == part_size {
                // The last allocation: aligned, so the whole part can go to disk directly.
                let mut v: Vec<u8> = Vec::with_capacity(part_size + ALIGN);
                let pad = v.as_ptr().align_offset(ALIGN).min(ALIGN);
                v.resize(pad, 0);
                v.extend_from_slice(self);
                self.vec = v;
                self.pad = pad;
            } else {
                self.vec.reserve_exact(target - self.vec.len());
            }
        }
        self.vec.extend_from_slice(data);
    }

    /// Keeps the first `len` bytes.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.vec.truncate(self.pad + len);
    }

    /// The data, as the buffer of one part (no copy); the buffer is empty after.
    pub(crate) fn take(&mut self) -> Bytes {
        let PartBuf { vec, pad } = std::mem::take(self);
        Bytes::from(vec).slice(pad..)
    }
}

/// The spill file of one upload: a buffered descriptor (reads, and what is not aligned)
/// and, when the filesystem allows it, an `O_DIRECT` one on the same file; and the part
/// writes still running, which whatever reads the file waits for ([`Spill::settle`]).
pub(crate) struct Spill {
    file: Arc<File>,
    direct: Option<Arc<File>>,
    pending: VecDeque<JoinHandle<std::io::Result<()>>>,
}

impl Spill {
    /// Spills into `file` (a new, unlinked staging file).
    pub(crate) fn new(file: File) -> Self {
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let direct = match direct {
            Ok(f) => Some(Arc::new(f)),
            Err(e) => {
                tracing::debug!(error = %e, "no O_DIRECT spill file: parts are spilled through the page cache");
                None
            }
        };
        Self {
            file: Arc::new(file),
            direct,
            pending: VecDeque::new(),
        }
    }

    /// Starts writing `part` at `at` on a blocking thread, first waiting while
    /// [`IN_FLIGHT`] writes are running; an error is that of an earlier write.
    pub(crate) async fn write(&mut self, part: Bytes, at: u64) -> std::io::Result<()> {
        while self.pending.len() >= IN_FLIGHT {
            self.wait_one().await?;
        }
        let write = self.write_part_fn(part, at);
        self.pending.push_back(tokio::task::spawn_blocking(write));
        Ok(())
    }

    /// Waits until every part written is in the file.
    pub(crate) async fn settle(&mut self) -> std::io::Result<()> {
        while !self.pending.is_empty() {
            self.wait_one().await?;
        }
        Ok(())
    }

    async fn wait_one(&mut self) -> std::io::Result<()> {
        match self.pending.pop_front() {
            Some(h) => h
                .await
                .map_err(|_| std::io::Error::other("spill write task ended"))?,
            None => Ok(()),
        }
    }

    /// The file, for reads and for later use as a staging file (after [`Spill::settle`]).
    pub(crate) fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Writes `part` at `at`, blocking: directly when the part, its length and the offset
    /// are aligned, through the page cache otherwise (or when the direct write is
    /// refused).
    fn write_part_fn(
        &self,
        part: Bytes,
        at: u64,
    ) -> impl FnOnce() -> std::io::Result<()> + Send + 'static {
        let file = self.file.clone();
        let direct = self.direct.clone().filter(|_| {
            part.as_ptr().align_offset(ALIGN) == 0
                && part.len().is_multiple_of(ALIGN)
                && at.is_multiple_of(ALIGN as u64)
        });
        move || {
            if let Some(d) = direct {
                match d.write_all_at(&part, at) {
                    Ok(()) => return Ok(()),
                    // Refused (an alignment this device wants beyond a page): buffered.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                    Err(e) => return Err(e),
                }
            }
            file.write_all_at(&part, at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_part_is_page_aligned_and_keeps_its_bytes() {
        let part = 8 << 20;
        let mut b = PartBuf::default();
        let mut want = Vec::new();
        for i in 0..(part / 100_000 + 1) {
            let chunk: Vec<u8> = (0..100_000u32).map(|j| (i as u32 + j) as u8).collect();
            let take = (part - b.len()).min(chunk.len());
            b.push(&chunk[..take], part);
            want.extend_from_slice(&chunk[..take]);
        }
        assert_eq!(b.len(), part);
        assert!(b.capacity() >= part);
        let bytes = b.take();
        assert_eq!(bytes.as_ptr().align_offset(ALIGN), 0);
        assert_eq!(&bytes[..], &want[..]);
        assert!(b.is_empty());
    }

    #[test]
    fn a_small_buffer_stays_small_and_truncates() {
        let mut b = PartBuf::default();
        b.push(b"hello world", 8 << 20);
        assert!(b.capacity() <= FIRST_ALLOC);
        b.truncate(5);
        assert_eq!(&b[..], b"hello");
        assert_eq!(&b.take()[..], b"hello");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parts_spilled_directly_or_not_read_back_the_same() {
        let mut spill = Spill::new(tempfile::tempfile().unwrap());
        let data: Vec<u8> = (0..(5 << 20) as u32).map(|i| (i % 251) as u8).collect();
        let mut at = 0;
        // Five aligned parts (more than run at once), then a short one at an odd offset.
        for chunk in data.chunks(1 << 20) {
            let mut b = PartBuf::default();
            b.push(chunk, 1 << 20);
            spill.write(b.take(), at).await.unwrap();
            at += chunk.len() as u64;
        }
        spill.write(Bytes::from_static(b"tail"), at).await.unwrap();
        spill.settle().await.unwrap();
        assert!(spill.pending.is_empty());
        let mut back = vec![0u8; data.len() + 4];
        spill.file().read_exact_at(&mut back, 0).unwrap();
        assert!(back[..data.len()] == data[..]);
        assert_eq!(&back[data.len()..], b"tail");
    }
}
