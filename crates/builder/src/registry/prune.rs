//! Freeing the pull cache once the store has imported what it needs.

use std::fs::{self, File, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::RegistryError;

/// Removes the layouts under `cache_dir/layouts/` whose manifest digest is not in `keep`,
/// then every blob (and partial download) in `cache_dir/blobs/sha256/` that no remaining
/// layout links. Returns the bytes freed.
///
/// A blob a pull is working on (its lock is held) is left alone, so pruning beside running
/// pulls is safe; so is a blob a kept layout links. Lock files stay (they are empty).
///
/// # Errors
/// [`RegistryError::Io`] when the cache cannot be read or an entry not be removed. A cache
/// that does not exist has nothing to free.
pub fn prune(cache_dir: &Path, keep: &[&str]) -> Result<u64, RegistryError> {
    let keep: Vec<&str> = keep
        .iter()
        .map(|d| d.trim_start_matches("sha256:"))
        .collect();
    let mut freed = 0;
    let layouts = cache_dir.join("layouts");
    for entry in read_dir(&layouts)? {
        let name = entry.file_name();
        if keep.iter().any(|k| name.to_str() == Some(k)) {
            continue;
        }
        fs::remove_dir_all(entry.path()).map_err(|e| io_error("remove", &entry.path(), e))?;
    }
    let blobs = cache_dir.join("blobs").join("sha256");
    for entry in read_dir(&blobs)? {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let (hex, partial) = match name.strip_suffix(".partial") {
            Some(hex) => (hex, true),
            None => (name, false),
        };
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            // Lock files and anything else that is not a blob.
            continue;
        }
        let lock_path = blobs.join(format!("{hex}.lock"));
        let lock = match File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
        {
            Ok(lock) => lock,
            Err(e) => return Err(io_error("create", &lock_path, e)),
        };
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => continue,
            Err(TryLockError::Error(e)) => return Err(io_error("lock", &lock_path, e)),
        }
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error("read", &path, e)),
        };
        // A complete blob linked by a layout has more than one link.
        if partial || meta.nlink() == 1 {
            fs::remove_file(&path).map_err(|e| io_error("remove", &path, e))?;
            freed += meta.len();
        }
    }
    Ok(freed)
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, RegistryError> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| io_error("read", dir, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_error("read", dir, e)),
    }
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> RegistryError {
    RegistryError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}
