//! Blobs into the shared cache: `blobs/sha256/<hex>` exists only after its bytes were hashed
//! to `<hex>`; a download in progress is `<hex>.partial`, resumed with a `Range` request by
//! the next attempt (in this pull or a later one); `<hex>.lock` serialises pulls (and
//! [`super::prune`]) over one blob, across processes.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, HeaderMap, HeaderValue, RANGE};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::client::Client;
use super::manifest::Descriptor;
use super::{Progress, RegistryError};

/// Transfers that break are resumed this many times within one pull before it gives up.
const ATTEMPTS: usize = 4;
/// Progress is reported at most once per this many bytes (and at the end).
const PROGRESS_STEP: u64 = 1 << 20;

/// Makes `blobs_dir/<hex>` hold the blob `desc` names, downloading what is missing.
/// Returns whether it was there already (verified again, not downloaded). The caller holds
/// the blob's lock ([`lock_all`]).
///
/// # Errors
/// `DigestMismatch` when a complete download does not hash to the digest (a partial that
/// fails the check is discarded and the blob fetched whole once more first);
/// `BlobNotFound` on 404; `Transfer` after [`ATTEMPTS`] broken transfers; `Io` on the cache.
pub(crate) async fn fetch(
    client: &Client,
    desc: &Descriptor,
    blobs_dir: &Path,
    display: &str,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<bool, RegistryError> {
    let hex = desc.digest.trim_start_matches("sha256:");
    let target = blobs_dir.join(hex);
    let partial = blobs_dir.join(format!("{hex}.partial"));

    if exists(&target)? {
        if verify_file(&target, desc).await? {
            return Ok(true);
        }
        tracing::warn!(digest = %desc.digest, "cached blob fails its digest: fetching it again");
        remove(&target)?;
    }
    let mut discarded_partial = false;
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        let hashed = match download(client, desc, &partial, display, progress).await {
            Ok(Step::Complete(hashed)) => hashed,
            Ok(Step::Retry(e)) | Err(e @ RegistryError::Transfer { .. }) => {
                tracing::debug!(digest = %desc.digest, error = %e, "blob transfer broke: resuming");
                last_error = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let verified = match hashed {
            Some(digest) => digest == desc.digest,
            None => verify_file(&partial, desc).await?,
        };
        if verified {
            std::fs::rename(&partial, &target).map_err(|source| RegistryError::Io {
                op: "rename into place",
                path: target.clone(),
                source,
            })?;
            return Ok(false);
        }
        remove(&partial)?;
        if discarded_partial {
            return Err(RegistryError::DigestMismatch {
                digest: desc.digest.clone(),
                registry: client.registry.clone(),
            });
        }
        // Maybe only the resumed-from bytes were wrong: one whole download decides.
        tracing::warn!(digest = %desc.digest, "blob fails its digest: downloading it whole");
        discarded_partial = true;
    }
    Err(last_error.unwrap_or(RegistryError::DigestMismatch {
        digest: desc.digest.clone(),
        registry: client.registry.clone(),
    }))
}

/// How a download attempt ended.
enum Step {
    /// `partial` holds what the registry sent. When it sent the whole blob in this attempt,
    /// the digest of exactly `desc.size` bytes of it (hashed as they arrived); `None` when
    /// the bytes must be hashed from the file (resumed, or too short).
    Complete(Option<String>),
    /// The transfer broke, or the range was refused and the partial discarded: try again.
    Retry(RegistryError),
}

/// Appends to `partial` what it lacks of the blob (all of it when it is empty, absent, or
/// the registry ignores the range). Stops once `desc.size` bytes are there.
async fn download(
    client: &Client,
    desc: &Descriptor,
    partial: &Path,
    display: &str,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Step, RegistryError> {
    let mut have = match std::fs::metadata(partial) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(source) => return Err(io_error("read", partial, source)),
    };
    if have >= desc.size {
        // Complete (or too long, which the digest check then refuses). An empty blob (OCI's
        // empty descriptor has size 2, but 0 is legal) needs no request at all.
        if desc.size == 0 {
            std::fs::write(partial, b"").map_err(|source| io_error("write", partial, source))?;
        }
        return Ok(Step::Complete(None));
    }
    let mut headers = HeaderMap::new();
    if have > 0 {
        let range = HeaderValue::from_str(&format!("bytes={have}-"))
            .map_err(|_| io_error("read", partial, io::ErrorKind::InvalidData.into()))?;
        headers.insert(RANGE, range);
    }
    let path = format!("/v2/{}/blobs/{}", client.repository, desc.digest);
    let response = client.get(&path, headers, &desc.digest).await?;
    let append = match response.status() {
        StatusCode::PARTIAL_CONTENT if have > 0 => {
            let start = format!("bytes {have}-");
            let ok = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with(&start));
            if !ok {
                return Err(client.status_error(StatusCode::PARTIAL_CONTENT, &desc.digest));
            }
            true
        }
        StatusCode::OK => false,
        StatusCode::RANGE_NOT_SATISFIABLE => {
            remove(partial)?;
            return Ok(Step::Retry(
                client.status_error(StatusCode::RANGE_NOT_SATISFIABLE, &desc.digest),
            ));
        }
        StatusCode::NOT_FOUND => {
            return Err(RegistryError::BlobNotFound {
                registry: client.registry.clone(),
                digest: desc.digest.clone(),
                reference: display.to_owned(),
            });
        }
        s => return Err(client.status_error(s, &desc.digest)),
    };
    if !append {
        have = 0;
    }
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(partial)
        .await
        .map_err(|source| io_error("write", partial, source))?;
    let mut body = response.bytes_stream();
    let mut reported = have;
    // Hashed as it arrives when the whole blob comes in this attempt, saving a read back.
    let mut hasher = (!append).then(Sha256::new);
    let mut broken = None;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                broken = Some(client.transfer_error(&desc.digest, e));
                break;
            }
        };
        // A registry sending more than the descriptor's size is not trusted for more.
        let room = usize::try_from(desc.size - have).unwrap_or(usize::MAX);
        let take = &chunk[..chunk.len().min(room)];
        file.write_all(take)
            .await
            .map_err(|source| io_error("write", partial, source))?;
        if let Some(hasher) = &mut hasher {
            hasher.update(take);
        }
        have += take.len() as u64;
        if have - reported >= PROGRESS_STEP || have == desc.size {
            reported = have;
            progress(Progress::Blob {
                digest: desc.digest.clone(),
                done: have,
                total: desc.size,
            });
        }
        if take.len() < chunk.len() {
            // Too long: what was kept fails the digest check unless it was right.
            break;
        }
    }
    // What arrived stays on disk even when the transfer broke: it is the next resume point.
    file.sync_all()
        .await
        .map_err(|source| io_error("write", partial, source))?;
    if let Some(e) = broken {
        return Ok(Step::Retry(e));
    }
    let hashed = hasher
        .filter(|_| have == desc.size)
        .map(|h| format!("sha256:{}", hex::encode(h.finalize())));
    Ok(Step::Complete(hashed))
}

/// Whether `path` has `desc.size` bytes hashing to `desc.digest` (hashed off the reactor).
async fn verify_file(path: &Path, desc: &Descriptor) -> Result<bool, RegistryError> {
    let path = path.to_owned();
    let (size, digest) = (desc.size, desc.digest.clone());
    tokio::task::spawn_blocking(move || {
        let mut file = File::open(&path).map_err(|source| io_error("read", &path, source))?;
        let len = file
            .metadata()
            .map_err(|source| io_error("read", &path, source))?
            .len();
        if len != size {
            return Ok(false);
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|source| io_error("read", &path, source))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(format!("sha256:{}", hex::encode(hasher.finalize())) == digest)
    })
    .await
    .map_err(|e| io_error("hash", Path::new(&desc.digest), io::Error::other(e)))?
}

/// Writes `bytes`, already hashed to `digest` by the caller, as the blob `digest`.
pub(crate) fn store_verified(
    blobs_dir: &Path,
    digest: &str,
    bytes: &[u8],
) -> Result<(), RegistryError> {
    let hex = digest.trim_start_matches("sha256:");
    let target = blobs_dir.join(hex);
    let tmp = blobs_dir.join(format!("{hex}.manifest-{}", super::unique_suffix()));
    std::fs::write(&tmp, bytes).map_err(|source| io_error("write", &tmp, source))?;
    std::fs::rename(&tmp, &target).map_err(|source| io_error("rename into place", &target, source))
}

/// Exclusive locks on the blobs `digests` (deduplicated, taken in sorted order so that two
/// pulls sharing blobs never wait on each other in a cycle), held until the returned files
/// are dropped.
pub(crate) async fn lock_all(
    blobs_dir: &Path,
    digests: &[&str],
) -> Result<Vec<File>, RegistryError> {
    let mut hexes: Vec<&str> = digests
        .iter()
        .map(|d| d.trim_start_matches("sha256:"))
        .collect();
    hexes.sort_unstable();
    hexes.dedup();
    let mut held = Vec::with_capacity(hexes.len());
    for hex in hexes {
        held.push(lock(blobs_dir.join(format!("{hex}.lock"))).await?);
    }
    Ok(held)
}

/// An exclusive lock on `path`, held until the returned file is dropped.
async fn lock(path: PathBuf) -> Result<File, RegistryError> {
    tokio::task::spawn_blocking(move || {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| io_error("create", &path, source))?;
        file.lock()
            .map_err(|source| io_error("lock", &path, source))?;
        Ok(file)
    })
    .await
    .map_err(|e| io_error("lock", Path::new("blob lock"), io::Error::other(e)))?
}

fn exists(path: &Path) -> Result<bool, RegistryError> {
    path.try_exists()
        .map_err(|source| io_error("read", path, source))
}

fn remove(path: &Path) -> Result<(), RegistryError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io_error("remove", path, source)),
    }
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> RegistryError {
    RegistryError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}
