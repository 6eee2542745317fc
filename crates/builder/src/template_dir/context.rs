//! The build context: the template directory's files after `.dockerignore`, and COPY
//! sources resolved against them.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::TemplateDirError;
use super::dockerignore::DockerIgnore;
use super::pattern::{Glob, clean};

/// What a context entry is. Symlinks are never followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (its target is in [`ContextEntry::link_target`]).
    Symlink,
}

/// One file, directory or symlink of the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEntry {
    /// Path relative to the context root. Empty for the root itself.
    pub rel: PathBuf,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Bytes of a file; length of a symlink's target; 0 for a directory.
    pub size: u64,
    /// A symlink's target as stored (not resolved).
    pub link_target: Option<PathBuf>,
}

impl ContextEntry {
    /// Whether this is the context root (`COPY . dest`).
    pub fn is_root(&self) -> bool {
        self.rel.as_os_str().is_empty()
    }
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> TemplateDirError + '_ {
    move |e| TemplateDirError::Read {
        path: path.to_owned(),
        source: Arc::new(e),
    }
}

fn entry(dir: &Path, rel: PathBuf) -> Result<Option<ContextEntry>, TemplateDirError> {
    let path = dir.join(&rel);
    let meta = fs::symlink_metadata(&path).map_err(read_err(&path))?;
    let ft = meta.file_type();
    let mode = meta.permissions().mode() & 0o7777;
    let (kind, size, link_target) = if ft.is_symlink() {
        let target = fs::read_link(&path).map_err(read_err(&path))?;
        let len = target.as_os_str().len() as u64;
        (EntryKind::Symlink, len, Some(target))
    } else if ft.is_dir() {
        (EntryKind::Dir, 0, None)
    } else if ft.is_file() {
        (EntryKind::File, meta.size(), None)
    } else {
        // Sockets, FIFOs and devices cannot be copied into an image layer by COPY.
        return Ok(None);
    };
    Ok(Some(ContextEntry {
        rel,
        kind,
        mode,
        size,
        link_target,
    }))
}

/// Every entry of the context under `dir` that `ignore` keeps, sorted by path (so a
/// directory's descendants follow it contiguously). The first entry is the root itself
/// (`rel` empty, [`ContextEntry::is_root`]). Symlinks are entries of their own and never
/// followed; sockets, FIFOs and devices are left out. A directory excluded by `ignore` is
/// still listed when a `!` line re-includes something below it (as Docker sends it).
///
/// Errors: [`TemplateDirError::Read`] naming the path that could not be read.
pub fn context_files(
    dir: &Path,
    ignore: &DockerIgnore,
) -> Result<Vec<ContextEntry>, TemplateDirError> {
    // The root is followed if it is a symlink: it is the directory the user named.
    let meta = fs::metadata(dir).map_err(read_err(dir))?;
    let mut out = vec![ContextEntry {
        rel: PathBuf::new(),
        kind: EntryKind::Dir,
        mode: meta.permissions().mode() & 0o7777,
        size: 0,
        link_target: None,
    }];
    walk(dir, Path::new(""), ignore, &mut out)?;
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// Adds the kept entries below `rel`; returns whether any was added.
fn walk(
    dir: &Path,
    rel: &Path,
    ignore: &DockerIgnore,
    out: &mut Vec<ContextEntry>,
) -> Result<bool, TemplateDirError> {
    let path = dir.join(rel);
    let mut names: Vec<_> = fs::read_dir(&path)
        .map_err(read_err(&path))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(read_err(&path))?;
    names.sort();
    let mut any = false;
    for name in names {
        let child = rel.join(&name);
        let Some(e) = entry(dir, child.clone())? else {
            continue;
        };
        let is_dir = e.kind == EntryKind::Dir;
        let excluded = ignore.matches(&child, is_dir);
        if excluded && !(is_dir && ignore.has_exclusions()) {
            continue;
        }
        if is_dir {
            let at = out.len();
            out.push(e);
            let kept_below = walk(dir, &child, ignore, out)?;
            if excluded && !kept_below {
                out.truncate(at);
                continue;
            }
        } else {
            out.push(e);
        }
        any = true;
    }
    Ok(any)
}

/// A COPY source made relative to the context root: a leading `/` means the root (as
/// Docker reads it), `.` is the root; a path that climbs out of the context is refused.
pub(crate) fn normalize_source(pattern: &str) -> Result<String, TemplateDirError> {
    let cleaned = clean(pattern.trim_start_matches('/'));
    if cleaned == ".." || cleaned.starts_with("../") {
        return Err(TemplateDirError::SourceOutsideContext {
            pattern: pattern.to_owned(),
        });
    }
    Ok(cleaned)
}

/// The entries a COPY source matches, in context order. `pattern` is relative to the
/// context root (a leading `/` too) and uses Go's `filepath.Match` syntax in each path
/// element (`*` never crosses `/`), as Docker's COPY does. `.` matches the root entry. A
/// matched directory stands for itself and everything below it (copy its contents).
///
/// Errors: [`TemplateDirError::SourceOutsideContext`] for `../x`;
/// [`TemplateDirError::BadPattern`]; [`TemplateDirError::NoMatch`] when nothing (left
/// after `.dockerignore`) matches.
pub fn match_sources<'a>(
    entries: &'a [ContextEntry],
    pattern: &str,
) -> Result<Vec<&'a ContextEntry>, TemplateDirError> {
    let norm = normalize_source(pattern)?;
    let no_match = || TemplateDirError::NoMatch {
        pattern: pattern.to_owned(),
    };
    if norm == "." {
        return entries
            .iter()
            .find(|e| e.is_root())
            .map(|e| vec![e])
            .ok_or_else(no_match);
    }
    let globs = norm
        .split('/')
        .map(Glob::element)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|message| TemplateDirError::BadPattern {
            pattern: pattern.to_owned(),
            message,
        })?;
    let found: Vec<&ContextEntry> = entries
        .iter()
        .filter(|e| {
            let names: Vec<_> = e.rel.iter().collect();
            names.len() == globs.len()
                && globs
                    .iter()
                    .zip(&names)
                    .all(|(g, n)| n.to_str().is_some_and(|n| g.matches(n)))
        })
        .collect();
    if found.is_empty() {
        return Err(no_match());
    }
    Ok(found)
}

/// `e` and every entry below it, from a sorted entry list.
pub(crate) fn with_descendants<'a>(
    entries: &'a [ContextEntry],
    e: &ContextEntry,
) -> impl Iterator<Item = &'a ContextEntry> {
    let start = entries.partition_point(|x| x.rel < e.rel);
    let kind = e.kind;
    let rel = e.rel.clone();
    entries[start..]
        .iter()
        .take_while(move |x| x.rel == rel || (kind == EntryKind::Dir && x.rel.starts_with(&rel)))
}
