//! Helpers of the image store tests: tree snapshots, overlay mounts, hand-made tarballs.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest as _, Sha256};

/// What a test compares of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Option<i64>,
    pub content: String,
    pub rdev: u64,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// The first path (sorted) sharing this inode, for files with several links.
    pub link_group: Option<String>,
}

/// Options of [`snapshot`].
#[derive(Debug, Clone, Copy)]
pub struct Snap {
    /// Compare directory mtimes too.
    pub dir_mtimes: bool,
    /// Record hard link groups (meaningless through overlay).
    pub links: bool,
}

pub const FULL: Snap = Snap {
    dir_mtimes: true,
    links: true,
};

pub fn xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut names = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(path, &mut names[..]).unwrap_or(0);
    let mut out = BTreeMap::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let name = std::str::from_utf8(name).unwrap().to_string();
        let mut value = vec![0u8; 65536];
        let got = rustix::fs::lgetxattr(path, name.as_str(), &mut value[..]).unwrap();
        value.truncate(got);
        out.insert(name, value);
    }
    out
}

pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).unwrap();
}

/// Every entry under `root` (not `root` itself), by relative path.
pub fn snapshot(root: &Path, opts: Snap) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), String> = BTreeMap::new();
    walk(root, root, opts, &mut out, &mut inodes);
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    opts: Snap,
    out: &mut BTreeMap<String, Node>,
    inodes: &mut BTreeMap<(u64, u64), String>,
) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let path = dir.join(&name);
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let m = path.symlink_metadata().unwrap();
        let ft = m.file_type();
        let (kind, content) = if ft.is_dir() {
            ('d', String::new())
        } else if ft.is_symlink() {
            (
                'l',
                std::fs::read_link(&path)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            )
        } else if ft.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            ('f', hex::encode(Sha256::digest(&bytes)))
        } else if ft.is_char_device() {
            ('c', String::new())
        } else if ft.is_block_device() {
            ('b', String::new())
        } else {
            ('p', String::new())
        };
        let link_group = (opts.links && !ft.is_dir() && m.nlink() > 1).then(|| {
            inodes
                .entry((m.dev(), m.ino()))
                .or_insert_with(|| rel.clone())
                .clone()
        });
        out.insert(
            rel,
            Node {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                mtime: (kind != 'd' || opts.dir_mtimes).then(|| m.mtime()),
                content,
                rdev: m.rdev(),
                xattrs: xattrs(&path),
                link_group,
            },
        );
        if ft.is_dir() {
            walk(root, &path, opts, out, inodes);
        }
    }
}

pub fn sh(script: &str) {
    let st = Command::new("sh").arg("-euc").arg(script).status().unwrap();
    assert!(st.success(), "{script}");
}

/// An overlay mount, unmounted on drop.
pub struct Overlay {
    pub merged: PathBuf,
}

impl Overlay {
    /// Mounts `lowers` (top first) with an optional upper dir (and a work dir beside it).
    pub fn mount(lowers: &[&Path], upper: Option<(&Path, &Path)>, merged: &Path) -> Self {
        std::fs::create_dir_all(merged).unwrap();
        let lower = lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let mut opts = format!("lowerdir={lower}");
        if let Some((up, work)) = upper {
            std::fs::create_dir_all(up).unwrap();
            std::fs::create_dir_all(work).unwrap();
            opts += &format!(",upperdir={},workdir={}", up.display(), work.display());
        }
        let st = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(merged)
            .status()
            .unwrap();
        assert!(st.success(), "mount overlay {opts}");
        Overlay {
            merged: merged.to_path_buf(),
        }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.merged).status();
    }
}

/// A tmpfs mount, unmounted on drop.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(at: &Path) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success());
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A tar header with a raw name (bypassing the tar crate's path checks, for hostile
/// archives).
pub fn raw_header(name: &[u8], kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    h
}

/// A raw symlink or hard link header.
pub fn raw_link(name: &[u8], kind: tar::EntryType, target: &[u8]) -> tar::Header {
    let mut h = raw_header(name, kind, 0);
    h.as_old_mut().linkname[..target.len()].copy_from_slice(target);
    h.set_cksum();
    h
}

/// Writes a tarball of `entries` (header, data) to `path`.
pub fn write_tar(path: &Path, entries: &[(tar::Header, Vec<u8>)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (h, data) in entries {
        b.append(h, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap();
}

/// A file entry with a checked path.
pub fn file_entry(path: &str, data: &[u8], mode: u32) -> (tar::Header, Vec<u8>) {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).unwrap();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(mode);
    h.set_size(data.len() as u64);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    (h, data.to_vec())
}

pub fn dir_entry(path: &str, mode: u32) -> (tar::Header, Vec<u8>) {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).unwrap();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(mode);
    h.set_size(0);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    (h, Vec::new())
}

/// sha256 of a file as `sha256:<hex>`.
pub fn sha256_file(path: &Path) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
    )
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The names of the entries of a tarball, in order.
pub fn tar_names(path: &Path) -> Vec<(String, u64, u64)> {
    let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                e.header().uid().unwrap(),
                e.header().gid().unwrap(),
            )
        })
        .collect()
}

/// Every path under `dir`, for checking nothing was left behind.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}
