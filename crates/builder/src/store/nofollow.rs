//! File system calls that never follow a symlink in the last component: the store only ever
//! works on trees it must not trust (layer tarballs, sandbox upper dirs).

use std::io;
use std::path::Path;

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

/// Every extended attribute of `path` (not followed), sorted by name.
pub(crate) fn xattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let len = match rustix::fs::llistxattr_query(path) {
        Ok(n) => n,
        Err(e) if e == rustix::io::Errno::OPNOTSUPP => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    if len == 0 {
        return Ok(Vec::new());
    }
    let mut names = vec![0u8; len];
    let n = rustix::fs::llistxattr(path, &mut names[..])?;
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        let size = match rustix::fs::lgetxattr_query(path, name) {
            Ok(s) => s,
            // Removed between the list and the read.
            Err(e) if e == rustix::io::Errno::NODATA => continue,
            Err(e) => return Err(e.into()),
        };
        let mut value = vec![0u8; size];
        let got = rustix::fs::lgetxattr(path, name, &mut value[..])?;
        value.truncate(got);
        out.push((name.to_string(), value));
    }
    out.sort();
    Ok(out)
}

/// Sets one extended attribute on `path` (not followed).
pub(crate) fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    Ok(rustix::fs::lsetxattr(
        path,
        name,
        value,
        XattrFlags::empty(),
    )?)
}

/// Removes one extended attribute from `path` (not followed).
pub(crate) fn remove_xattr(path: &Path, name: &str) -> io::Result<()> {
    Ok(rustix::fs::lremovexattr(path, name)?)
}

/// `lchown`.
pub(crate) fn chown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    Ok(rustix::fs::chownat(
        CWD,
        path,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// Sets the permission bits (with setuid, setgid, sticky) of `path`, which must not be a
/// symlink (the caller has just created it).
pub(crate) fn chmod(path: &Path, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::chmodat(
        CWD,
        path,
        Mode::from_bits_truncate(mode & 0o7777),
        AtFlags::empty(),
    )?)
}

/// Sets atime and mtime of `path` (not followed) to `secs`.
pub(crate) fn set_mtime(path: &Path, secs: i64) -> io::Result<()> {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    Ok(rustix::fs::utimensat(
        CWD,
        path,
        &times,
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// The kind of special file [`mknod`] makes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Special {
    Char,
    Block,
    Fifo,
}

/// Creates a device node or fifo at `path` (which must not exist).
pub(crate) fn mknod(
    path: &Path,
    kind: Special,
    mode: u32,
    major: u32,
    minor: u32,
) -> io::Result<()> {
    let ft = match kind {
        Special::Char => FileType::CharacterDevice,
        Special::Block => FileType::BlockDevice,
        Special::Fifo => FileType::Fifo,
    };
    Ok(rustix::fs::mknodat(
        CWD,
        path,
        ft,
        Mode::from_bits_truncate(mode & 0o7777),
        rustix::fs::makedev(major, minor),
    )?)
}

/// Creates an overlay whiteout (a 0/0 character device owned by 0:0) at `path`.
pub(crate) fn whiteout(path: &Path) -> io::Result<()> {
    mknod(path, Special::Char, 0, 0, 0)?;
    chown(path, 0, 0)
}

/// Whether a `lstat` result is an overlay whiteout.
pub(crate) fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Major and minor of a device number.
pub(crate) fn dev_parts(rdev: u64) -> (u32, u32) {
    (rustix::fs::major(rdev), rustix::fs::minor(rdev))
}

/// Removes whatever is at `path` (a directory with everything in it), without following
/// symlinks. Missing is fine.
pub(crate) fn remove_any(path: &Path) -> io::Result<()> {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Bytes used by the files under `path` (their lengths; a directory counts its contents),
/// without following symlinks.
pub(crate) fn tree_size(path: &Path) -> io::Result<u64> {
    let meta = path.symlink_metadata()?;
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        total += tree_size(&entry?.path())?;
    }
    Ok(total)
}
