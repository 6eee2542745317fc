//! Blocking filesystem operations behind the RPCs (run them with `spawn_blocking`, on a thread
//! acting as the requesting user: [`crate::identity`]). They have that user's rights, and what
//! they create is the user's as it would be for the user's own process.

use std::io;
use std::path::{Path, PathBuf};

use super::entry::{EntryInfo, entry_info};
use super::error::FsError;
use crate::users::Names;

/// Creates `dir` and its missing parents, owned by the acting identity. An existing directory
/// is fine.
pub fn create_dirs(dir: &Path) -> Result<(), FsError> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(p) = cur {
        match std::fs::symlink_metadata(p) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(p.to_owned()),
            Err(e) => return Err(FsError::io("stat", p, e)),
        }
        cur = p.parent();
    }
    for p in missing.iter().rev() {
        match std::fs::create_dir(p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && p.is_dir() => {}
            Err(e) => {
                return Err(FsError::Io {
                    op: "create directory",
                    path: p.clone(),
                    source: e,
                });
            }
        }
    }
    if !dir.is_dir() {
        return Err(FsError::NotADirectory(dir.to_owned()));
    }
    Ok(())
}

/// `Stat`.
pub fn stat(path: &Path, names: &Names) -> Result<EntryInfo, FsError> {
    entry_info(path, names).map_err(|e| FsError::io("stat", path, e))
}

/// `MakeDir`: already existing dir → [`FsError::AlreadyExists`].
pub fn make_dir(path: &Path, names: &Names) -> Result<EntryInfo, FsError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => return Err(FsError::AlreadyExists(path.to_owned())),
        Ok(_) => return Err(FsError::ExistsNotDirectory(path.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(FsError::io("stat", path, e)),
    }
    create_dirs(path)?;
    stat(path, names)
}

/// `Move`: rename, creating the destination's parents.
pub fn rename(src: &Path, dst: &Path, names: &Names) -> Result<EntryInfo, FsError> {
    std::fs::symlink_metadata(src).map_err(|e| FsError::io("stat", src, e))?;
    if let Some(parent) = dst.parent() {
        create_dirs(parent)?;
    }
    std::fs::rename(src, dst).map_err(|e| FsError::Io {
        op: "rename",
        path: src.to_owned(),
        source: e,
    })?;
    stat(dst, names)
}

/// `Remove`: recursive; a missing path is not an error.
pub fn remove(path: &Path) -> Result<(), FsError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(FsError::io("stat", path, e)),
    };
    let result = if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(FsError::Io {
            op: "remove",
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// `ListDir`: entries up to `depth` levels below `path` (0 is 1). `path` may be a symlink to
/// a directory; symlinks below it are listed but not descended into.
pub fn list_dir(path: &Path, depth: u32, names: &Names) -> Result<Vec<EntryInfo>, FsError> {
    let meta = std::fs::metadata(path).map_err(|e| FsError::io("stat", path, e))?;
    if !meta.is_dir() {
        return Err(FsError::NotADirectory(path.to_owned()));
    }
    let mut out = Vec::new();
    walk(path, depth.max(1), names, &mut out)?;
    Ok(out)
}

fn walk(
    dir: &Path,
    levels_left: u32,
    names: &Names,
    out: &mut Vec<EntryInfo>,
) -> Result<(), FsError> {
    let mut children: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| FsError::io("read directory", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    children.sort();
    for child in children {
        // An entry removed while listing is skipped, not an error.
        let Ok(info) = entry_info(&child, names) else {
            continue;
        };
        let descend =
            levels_left > 1 && info.file_type == "FILE_TYPE_DIRECTORY" && !info.is_symlink;
        out.push(info);
        if descend {
            walk(&child, levels_left - 1, names, out)?;
        }
    }
    Ok(())
}
