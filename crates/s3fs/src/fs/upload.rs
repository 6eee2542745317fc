//! Uploading a staging file: one PUT up to a part, else a multipart upload with bounded
//! concurrency.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::S3Fs;
use super::write::{PartResult, join_err};
use crate::client::Meta;
use crate::error::FsError;

/// Uploads a staging file: one PUT up to a part, else a multipart upload with at most
/// `upload_concurrency` parts in memory.
pub(super) async fn upload_file(
    fs: &S3Fs,
    key: &str,
    f: &File,
    size: u64,
    meta: &Meta,
) -> Result<(), FsError> {
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
            .put_object_meta(key, body, meta)
            .await
            .map_err(FsError::s3("PutObject", key));
    }
    let id = fs
        .client
        .create_multipart(key, meta)
        .await
        .map_err(FsError::s3("CreateMultipartUpload", key))?;
    fs.journal_started(key, &id);
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
    if result.is_ok() {
        fs.journal_ended(&id);
    } else {
        match fs.client.abort_multipart(key, &id).await {
            Ok(()) => fs.journal_ended(&id),
            Err(e) => tracing::warn!(%key, error = %e, "abort of a failed multipart upload failed"),
        }
    }
    result
}
