//! Reads: ranged GETs, with chunked readahead for sequential readers.
//!
//! A handle that reads sequentially (first read at 0, or each read close to where the last
//! one ended) is served from aligned chunks of `readahead` bytes, and the next two chunks
//! are fetched in the background. A random reader gets exactly the bytes it asked for.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use tokio::task::JoinHandle;

use super::{Handle, S3Fs};
use crate::client::S3Client;
use crate::error::{FsError, S3Error};

/// Chunks fetched ahead of the one being read.
const AHEAD: u64 = 2;

enum Chunk {
    Ready(Bytes),
    Pending(JoinHandle<Result<Bytes, S3Error>>),
}

/// Per-handle read state.
pub(crate) struct ReadState {
    key: String,
    size: u64,
    chunk: u64,
    chunks: BTreeMap<u64, Chunk>,
    last_end: Option<u64>,
}

impl Drop for ReadState {
    fn drop(&mut self) {
        for c in self.chunks.values() {
            if let Chunk::Pending(h) = c {
                h.abort();
            }
        }
    }
}

impl ReadState {
    pub(crate) fn new(key: String, size: u64, chunk: usize) -> Self {
        Self {
            key,
            size,
            chunk: chunk as u64,
            chunks: BTreeMap::new(),
            last_end: None,
        }
    }

    fn is_sequential(&self, offset: u64) -> bool {
        match self.last_end {
            None => offset == 0,
            Some(end) => offset + 2 * self.chunk >= end && offset <= end + 2 * self.chunk,
        }
    }

    fn spawn_fetch(&mut self, client: &S3Client, idx: u64) {
        if self.chunks.contains_key(&idx) || idx * self.chunk >= self.size {
            return;
        }
        let (client, key) = (client.clone(), self.key.clone());
        let (start, len) = (
            idx * self.chunk,
            self.chunk.min(self.size - idx * self.chunk),
        );
        let h = tokio::spawn(async move { client.get_range(&key, start, len).await });
        self.chunks.insert(idx, Chunk::Pending(h));
    }

    async fn chunk(&mut self, client: &S3Client, idx: u64) -> Result<Bytes, FsError> {
        self.spawn_fetch(client, idx);
        let entry = self.chunks.remove(&idx);
        let bytes = match entry {
            Some(Chunk::Ready(b)) => b,
            Some(Chunk::Pending(h)) => match h.await {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => return Err(FsError::s3("GetObject", &self.key)(e)),
                Err(_) => {
                    return Err(FsError::s3("GetObject", &self.key)(S3Error::Malformed {
                        what: "download task ended",
                    }));
                }
            },
            None => Bytes::new(),
        };
        self.chunks.insert(idx, Chunk::Ready(bytes.clone()));
        Ok(bytes)
    }

    /// Reads up to `len` bytes at `offset` (fewer at end of file).
    pub(crate) async fn read(
        &mut self,
        client: &S3Client,
        offset: u64,
        len: u32,
    ) -> Result<Bytes, FsError> {
        if offset >= self.size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = (offset + u64::from(len)).min(self.size);
        let sequential = self.is_sequential(offset);
        self.last_end = Some(end);
        if !sequential {
            return client
                .get_range(&self.key, offset, end - offset)
                .await
                .map_err(FsError::s3("GetObject", &self.key));
        }
        let first = offset / self.chunk;
        let last = (end - 1) / self.chunk;
        // Keep only the chunks at or after the one being read.
        self.chunks.retain(|&i, c| {
            let keep = i >= first;
            if let (false, Chunk::Pending(h)) = (keep, &*c) {
                h.abort();
            }
            keep
        });
        for i in last + 1..=last + AHEAD {
            self.spawn_fetch(client, i);
        }
        if first == last {
            let b = self.chunk(client, first).await?;
            let s = usize::try_from(offset - first * self.chunk).map_err(|_| FsError::Invalid)?;
            let e = usize::try_from(end - first * self.chunk).map_err(|_| FsError::Invalid)?;
            return Ok(b.slice(s.min(b.len())..e.min(b.len())));
        }
        let mut out = BytesMut::with_capacity(usize::try_from(end - offset).unwrap_or(0));
        for i in first..=last {
            let b = self.chunk(client, i).await?;
            let base = i * self.chunk;
            let s = usize::try_from(offset.max(base) - base).map_err(|_| FsError::Invalid)?;
            let e =
                usize::try_from(end.min(base + self.chunk) - base).map_err(|_| FsError::Invalid)?;
            out.extend_from_slice(&b[s.min(b.len())..e.min(b.len())]);
        }
        Ok(out.freeze())
    }
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
                state.lock().await.read(&self.client, offset, len).await
            }
            Handle::Write { state, .. } => state.lock().await.read(self, offset, len).await,
            Handle::Dir(_) => Err(FsError::IsDir),
        }
    }
}
