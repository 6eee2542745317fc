//! The content hash of what a COPY would take from the context, for the step cache.

use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::TemplateDirError;
use super::context::{ContextEntry, EntryKind, match_sources, normalize_source, with_descendants};

/// Version of the hashed layout: a change here must change every key.
const DOMAIN: &[u8] = b"bulkhead-copy-sources-v1\0";

fn put(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// SHA-256 over what `patterns` (COPY sources, as [`match_sources`] reads them) select
/// from `entries` (from [`context_files`](super::context_files) on `dir`): for each pattern
/// in order, the pattern (normalized: `/a`, `./a` and `a` hash the same), then every
/// matched entry and everything below a matched directory, in path order, each as its
/// relative path, kind, permission bits, size, and its content (a file's bytes, read from `dir`) or its link target (a symlink).
/// Modification times, owners and the context's location are not hashed, so a fresh
/// checkout of the same files gives the same hash.
///
/// Errors: those of [`match_sources`], and [`TemplateDirError::Read`] for a file that
/// cannot be read (or changed size while read).
pub fn hash_sources(
    dir: &Path,
    entries: &[ContextEntry],
    patterns: &[String],
) -> Result<[u8; 32], TemplateDirError> {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    let mut buf = vec![0u8; 64 * 1024];
    for pattern in patterns {
        put(&mut h, normalize_source(pattern)?.as_bytes());
        for matched in match_sources(entries, pattern)? {
            for e in with_descendants(entries, matched) {
                put(&mut h, e.rel.as_os_str().as_bytes());
                h.update([match e.kind {
                    EntryKind::File => b'f',
                    EntryKind::Dir => b'd',
                    EntryKind::Symlink => b'l',
                }]);
                h.update(e.mode.to_le_bytes());
                h.update(e.size.to_le_bytes());
                match e.kind {
                    EntryKind::File => hash_file(&mut h, &dir.join(&e.rel), e.size, &mut buf)?,
                    EntryKind::Symlink => {
                        let t = e.link_target.as_deref().unwrap_or(Path::new(""));
                        put(&mut h, t.as_os_str().as_bytes());
                    }
                    EntryKind::Dir => {}
                }
            }
        }
    }
    Ok(h.finalize().into())
}

fn hash_file(
    h: &mut Sha256,
    path: &Path,
    size: u64,
    buf: &mut [u8],
) -> Result<(), TemplateDirError> {
    let err = |e: std::io::Error| TemplateDirError::Read {
        path: path.to_owned(),
        source: Arc::new(e),
    };
    let mut f = File::open(path).map_err(err)?;
    let mut read = 0u64;
    loop {
        let n = f.read(buf).map_err(err)?;
        if n == 0 {
            break;
        }
        read += n as u64;
        h.update(&buf[..n]);
    }
    if read != size {
        return Err(err(std::io::Error::other(
            "the file changed size while the context was hashed",
        )));
    }
    Ok(())
}
