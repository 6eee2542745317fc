//! A layer tarball into an overlay-ready directory.
//!
//! The tarball is untrusted. Every entry path is split into plain names (`..` and absolute
//! paths are refused); each parent directory is checked with `lstat` before anything is
//! created in it, and refused when it is a symlink or not a directory, so no entry can write
//! through a symlink an earlier entry made. The last component is always created anew with
//! calls that do not follow it (`O_CREAT|O_EXCL|O_NOFOLLOW`, `mknod`, `symlink`, `link`, and
//! the `l*`/`AT_SYMLINK_NOFOLLOW` forms for owners, times and xattrs). The check by `lstat`
//! holds because the destination is a fresh directory under the store's `tmp/` that nothing
//! else writes to while it is unpacked.
//!
//! OCI whiteouts become overlay whiteouts (`.wh.NAME` → a 0/0 character device `NAME`, owned
//! 0:0), the opaque marker `.wh..wh..opq` becomes `trusted.overlay.opaque=y` on its directory.
//! `trusted.overlay.*` xattrs in the tarball itself are dropped: only markers say that.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use tar::EntryType;

use super::StoreError;
use super::nofollow::{self, Special};

/// The xattr prefix of overlayfs' own attributes.
pub(crate) const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";
/// The xattr that makes an overlay directory opaque.
pub(crate) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The OCI whiteout prefix.
pub(crate) const WHITEOUT_PREFIX: &str = ".wh.";
/// The OCI opaque-directory marker.
pub(crate) const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Unpacks every entry of the tar stream `reader` into `dest`, an existing empty directory,
/// and returns the reader positioned after the archive's end marker.
pub(crate) fn unpack<R: Read>(reader: R, dest: &Path) -> Result<R, StoreError> {
    let mut archive = tar::Archive::new(reader);
    let mut state = Unpacker {
        dest,
        verified: HashSet::new(),
        dir_times: Vec::new(),
    };
    let read_err = StoreError::io("reading the layer tarball for", dest);
    let entries = archive.entries().map_err(read_err)?;
    for entry in entries {
        let entry = entry.map_err(StoreError::io("reading the layer tarball for", dest))?;
        state.entry(entry)?;
    }
    // Directory times last: creating entries in a directory changes its mtime.
    for (path, secs) in state.dir_times.iter().rev() {
        match nofollow::set_mtime(path, *secs) {
            // A later entry replaced the directory.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            r => r.map_err(StoreError::io("setting the mtime of", path))?,
        }
    }
    Ok(archive.into_inner())
}

struct Unpacker<'a> {
    dest: &'a Path,
    /// Directories (relative) known to be real directories, not symlinks.
    verified: HashSet<PathBuf>,
    dir_times: Vec<(PathBuf, i64)>,
}

/// The metadata every entry carries.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn refuse(entry: &[u8], reason: &'static str) -> StoreError {
    StoreError::UnsafeEntry {
        entry: String::from_utf8_lossy(entry).into_owned(),
        reason,
    }
}

/// Splits a tar path into plain names; refuses `..` and absolute paths.
fn names(raw: &[u8]) -> Result<Vec<&OsStr>, StoreError> {
    if raw.first() == Some(&b'/') {
        return Err(refuse(raw, "absolute path"));
    }
    let mut out = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(refuse(raw, "path has .."))?,
            p => out.push(OsStr::from_bytes(p)),
        }
    }
    Ok(out)
}

fn rel_of(names: &[&OsStr]) -> PathBuf {
    names.iter().collect()
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), StoreError> {
        let raw = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader | EntryType::XHeader) {
            return Ok(());
        }
        let meta = self.meta(&mut entry, &raw)?;
        let parts = names(&raw)?;
        let Some((last, parents)) = parts.split_last() else {
            // The layer's root itself ("./").
            if kind != EntryType::Directory {
                return Err(refuse(&raw, "the root of a layer must be a directory"));
            }
            let root = self.dest.to_path_buf();
            return self.apply(&root, &meta, true);
        };
        let parent = self.parent(parents, &raw)?;
        let last_bytes = last.as_bytes();
        if last_bytes == OPAQUE_MARKER.as_bytes() {
            return nofollow::set_xattr(&parent, OPAQUE_XATTR, b"y")
                .map_err(StoreError::io("marking opaque", &parent));
        }
        if let Some(hidden) = last_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if hidden == b"." || hidden == b".." {
                return Err(refuse(&raw, "whiteout of . or .."));
            }
            if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) || hidden.is_empty() {
                // Other AUFS metadata (.wh..wh.plnk and such): not part of the tree.
                return Ok(());
            }
            let target = parent.join(OsStr::from_bytes(hidden));
            self.clear(&target, rel_of(parents).join(OsStr::from_bytes(hidden)))?;
            return nofollow::whiteout(&target)
                .map_err(StoreError::io("creating whiteout", &target));
        }
        let path = parent.join(last);
        let rel = rel_of(&parts);
        let existing = path.symlink_metadata().ok();
        let keep_dir =
            kind == EntryType::Directory && existing.as_ref().is_some_and(|m| m.is_dir());
        if existing.is_some() && !keep_dir {
            self.clear(&path, rel.clone())?;
        }
        let create = StoreError::io("creating", &path);
        match kind {
            EntryType::Directory => {
                if !keep_dir {
                    std::fs::create_dir(&path).map_err(create)?;
                }
                self.verified.insert(rel);
                return self.apply(&path, &meta, true);
            }
            // A GNU sparse file reads back with its holes as zeros.
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&path)
                    .map_err(create)?;
                io::copy(&mut entry, &mut file).map_err(StoreError::io("writing", &path))?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refuse(&raw, "symlink without a target"))?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path).map_err(create)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refuse(&raw, "hard link without a target"))?
                    .into_owned();
                let source = self.link_source(&target)?;
                return std::fs::hard_link(&source, &path).map_err(create);
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let special = match kind {
                    EntryType::Char => Special::Char,
                    EntryType::Block => Special::Block,
                    _ => Special::Fifo,
                };
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                nofollow::mknod(&path, special, meta.mode, major, minor).map_err(create)?;
            }
            _ => return Err(refuse(&raw, "entry type not supported in a layer")),
        }
        self.apply(&path, &meta, false)
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, raw: &[u8]) -> Result<Meta, StoreError> {
        let mut xattrs = Vec::new();
        let pax = entry
            .pax_extensions()
            .map_err(StoreError::io("reading the layer tarball for", self.dest))?;
        if let Some(pax) = pax {
            for ext in pax {
                let ext =
                    ext.map_err(StoreError::io("reading the layer tarball for", self.dest))?;
                let Ok(key) = ext.key() else { continue };
                if let Some(name) = key.strip_prefix("SCHILY.xattr.")
                    && !name.starts_with(OVERLAY_XATTR_PREFIX)
                {
                    xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
        let h = entry.header();
        let bad = |_| refuse(raw, "unreadable header field");
        let id = |v: u64| u32::try_from(v).map_err(|_| refuse(raw, "owner id out of range"));
        // Blank numeric fields (some writers leave them empty) read as 0.
        Ok(Meta {
            mode: h.mode().map_err(bad)?,
            uid: id(h.uid().unwrap_or(0))?,
            gid: id(h.gid().unwrap_or(0))?,
            mtime: i64::try_from(h.mtime().unwrap_or(0)).unwrap_or(0),
            xattrs,
        })
    }

    /// The host path of the parent directory `names`, creating missing directories (0755,
    /// root) and refusing symlinks and non-directories on the way.
    fn parent(&mut self, names: &[&OsStr], raw: &[u8]) -> Result<PathBuf, StoreError> {
        let mut rel = PathBuf::new();
        for name in names {
            rel.push(name);
            if self.verified.contains(&rel) {
                continue;
            }
            let path = self.dest.join(&rel);
            match path.symlink_metadata() {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(refuse(raw, "a parent directory is a symlink"));
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(refuse(raw, "a parent is not a directory")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    std::fs::create_dir(&path).map_err(StoreError::io("creating", &path))?;
                }
                Err(e) => return Err(StoreError::io("inspecting", &path)(e)),
            }
            self.verified.insert(rel.clone());
        }
        Ok(self.dest.join(rel))
    }

    /// The host path of a hard link's target: inside the layer, existing, not a directory.
    fn link_source(&mut self, target: &[u8]) -> Result<PathBuf, StoreError> {
        let parts = names(target)?;
        let Some((_, parents)) = parts.split_last() else {
            return Err(refuse(target, "hard link to the layer root"));
        };
        for i in 1..=parents.len() {
            let path = self.dest.join(rel_of(&parents[..i]));
            match path.symlink_metadata() {
                Ok(m) if m.is_dir() => {}
                _ => return Err(refuse(target, "hard link target is not inside the layer")),
            }
        }
        let source = self.dest.join(rel_of(&parts));
        match source.symlink_metadata() {
            Ok(m) if !m.is_dir() => Ok(source),
            _ => Err(refuse(target, "hard link target is missing or a directory")),
        }
    }

    /// Removes what is at `path` (an earlier entry being replaced) and forgets the verified
    /// directories at and under it.
    fn clear(&mut self, path: &Path, rel: PathBuf) -> Result<(), StoreError> {
        nofollow::remove_any(path).map_err(StoreError::io("replacing", path))?;
        self.verified.retain(|p| !p.starts_with(&rel));
        Ok(())
    }

    fn apply(&mut self, path: &Path, meta: &Meta, is_dir: bool) -> Result<(), StoreError> {
        let is_symlink = path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink());
        // Owner first: chown clears setuid bits and file capabilities.
        nofollow::chown(path, meta.uid, meta.gid)
            .map_err(StoreError::io("setting the owner of", path))?;
        if !is_symlink {
            nofollow::chmod(path, meta.mode)
                .map_err(StoreError::io("setting the mode of", path))?;
        }
        for (name, value) in &meta.xattrs {
            if is_symlink && name.starts_with("user.") {
                continue;
            }
            nofollow::set_xattr(path, name, value).map_err(|source| StoreError::Io {
                op: "setting an xattr of",
                path: path.to_path_buf(),
                source,
            })?;
        }
        if is_dir {
            self.dir_times.push((path.to_path_buf(), meta.mtime));
            return Ok(());
        }
        nofollow::set_mtime(path, meta.mtime).map_err(StoreError::io("setting the mtime of", path))
    }
}
