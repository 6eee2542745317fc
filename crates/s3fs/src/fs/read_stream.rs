//! Reads with `--read-strategy streamed`: one streamed GET per sequential reader, exact
//! ranged GETs for random readers. For S3 servers whose ranged GET costs a read of the whole
//! object (moto, LocalStack), where the prefetcher's parts ([`super::read`]) would each cost
//! that.
//!
//! A sequential reader (first read near 0, or a read that starts near where the last one
//! ended, within [`WINDOW`]) gets a GET from the lower of the two offsets to the end of the
//! object, pulled by a background task into a
//! bounded channel of 1 MiB pieces (`readahead` bytes at most), so the network runs ahead
//! of the reader with bounded memory. Recently returned data is kept in a small window, so
//! the kernel's concurrent readahead requests may arrive slightly out of order without
//! restarting the stream. Any other read is a ranged GET of exactly the bytes asked.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::S3Client;
use crate::error::{FsError, S3Error};

/// Size of the pieces the download task hands over.
const PIECE: usize = 1 << 20;
/// Data kept behind the read position for out-of-order readahead requests.
const WINDOW: u64 = 4 << 20;

struct Stream {
    /// Offset just past the last byte received.
    pos: u64,
    /// Received pieces covering `[pos - window_len, pos)`, oldest first.
    window: VecDeque<(u64, Bytes)>,
    rx: mpsc::Receiver<Result<Bytes, S3Error>>,
    task: JoinHandle<()>,
    done: bool,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream {
    fn start(client: &S3Client, key: &str, offset: u64, readahead: usize) -> Self {
        let (tx, rx) = mpsc::channel((readahead / PIECE).max(1));
        let (client, key) = (client.clone(), key.to_string());
        let task = tokio::spawn(async move {
            let resp = match client.get_from(&key, offset).await {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let mut body = resp.bytes_stream();
            let mut buf = BytesMut::with_capacity(PIECE);
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(c) => {
                        crate::stats::downloaded(c.len());
                        buf.extend_from_slice(&c);
                        if buf.len() >= PIECE && tx.send(Ok(buf.split().freeze())).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(S3Error::Network(e))).await;
                        return;
                    }
                }
            }
            if !buf.is_empty() {
                let _ = tx.send(Ok(buf.freeze())).await;
            }
        });
        Self {
            pos: offset,
            window: VecDeque::new(),
            rx,
            task,
            done: false,
        }
    }

    fn window_start(&self) -> u64 {
        self.window.front().map_or(self.pos, |(o, _)| *o)
    }

    /// Receives until `end` is covered (or the body ends); false when `end` is too far ahead.
    async fn fill_to(&mut self, end: u64, max_ahead: u64) -> Result<(), S3Error> {
        while self.pos < end && !self.done {
            if end - self.pos > max_ahead {
                return Ok(());
            }
            match self.rx.recv().await {
                Some(Ok(piece)) => {
                    let at = self.pos;
                    self.pos += piece.len() as u64;
                    self.window.push_back((at, piece));
                }
                Some(Err(e)) => return Err(e),
                None => self.done = true,
            }
        }
        Ok(())
    }

    /// Copies `[start, end)` out of the window, if it is all there.
    fn copy(&self, start: u64, end: u64) -> Option<Bytes> {
        if start < self.window_start() || end > self.pos {
            return None;
        }
        if start == end {
            return Some(Bytes::new());
        }
        super::read::gather(self.window.iter().map(|(at, p)| (*at, p)), start, end)
    }

    /// Drops pieces that ended more than [`WINDOW`] before `keep_from`.
    fn trim(&mut self, keep_from: u64) {
        while let Some((at, piece)) = self.window.front() {
            if at + (piece.len() as u64) + WINDOW <= keep_from {
                self.window.pop_front();
            } else {
                break;
            }
        }
    }
}

/// Per-handle read state.
pub(crate) struct StreamReadState {
    key: String,
    size: u64,
    readahead: usize,
    stream: Option<Stream>,
    last_end: Option<u64>,
}

impl StreamReadState {
    pub(crate) fn new(key: String, size: u64, readahead: usize) -> Self {
        Self {
            key,
            size,
            readahead,
            stream: None,
            last_end: None,
        }
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
        let max_ahead = self.readahead as u64 + WINDOW;
        let err = FsError::s3("GetObject", &self.key);
        if let Some(s) = self.stream.as_mut()
            && offset >= s.window_start()
            && end <= s.pos + max_ahead
        {
            match s.fill_to(end, max_ahead).await {
                Ok(()) => {
                    if let Some(b) = s.copy(offset, end.min(s.pos)) {
                        s.trim(offset);
                        self.last_end = Some(self.last_end.map_or(end, |l| l.max(end)));
                        return Ok(b);
                    }
                }
                Err(e) => {
                    self.stream = None;
                    return Err(err(e));
                }
            }
        }
        // Near where the last read ended (or near the start): the kernel's readahead
        // requests arrive slightly out of order across FUSE threads. The stream starts at
        // the lower of the two offsets, so both are served from it.
        let from = self.last_end.unwrap_or(0);
        let sequential = offset.abs_diff(from) <= WINDOW;
        self.last_end = Some(end);
        if sequential {
            let start = offset.min(from);
            tracing::debug!(key = %self.key, offset, start, "streamed GET started");
            let mut s = Stream::start(client, &self.key, start, self.readahead);
            let r = s.fill_to(end, max_ahead).await;
            if let Err(e) = r {
                return Err(err(e));
            }
            let b = s.copy(offset, end.min(s.pos)).unwrap_or_default();
            self.stream = Some(s);
            return Ok(b);
        }
        tracing::debug!(key = %self.key, offset, len = end - offset, "ranged GET");
        client
            .get_range(&self.key, offset, end - offset)
            .await
            .map_err(err)
    }
}
