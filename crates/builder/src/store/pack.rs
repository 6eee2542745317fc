//! A directory tree (an overlay upper dir or a root filesystem) into a deterministic layer
//! tarball: names sorted bytewise, depth first; mtimes kept (whole seconds); no user or group
//! names, no atime or ctime; owners shifted down by the sandbox's first host id. The same tree
//! gives the same bytes, so the same diff_id.
//!
//! Overlay whiteouts (0/0 character devices) become `.wh.NAME` entries, an opaque directory
//! (`trusted.overlay.opaque=y`) is followed by its `.wh..wh..opq` entry; these markers are
//! owned 0:0 with mode 0 and mtime 0. No `trusted.overlay.*` xattr enters the tarball.
//! Sockets are left out (Docker does the same).
//!
//! The tree is walked with `lstat` and files are opened with `O_NOFOLLOW`: a symlink is
//! recorded, never followed.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::StoreError;
use super::fix::Fix;
use super::nofollow;
use super::unpack::{OPAQUE_MARKER, OPAQUE_XATTR, OVERLAY_XATTR_PREFIX, WHITEOUT_PREFIX};

/// How [`pack`] reads a tree.
pub(crate) struct PackOptions<'a> {
    /// Host id of image id 0: recorded ids are `host - shift`.
    pub shift: u32,
    /// Number of ids the image has: host ids at or past `shift + count` are refused.
    pub count: u32,
    /// Image paths (relative, no leading `/`) left out with everything under them.
    pub exclude: &'a [PathBuf],
    /// Also return the [`Fix`]es that make the tree itself what the tarball says (owners
    /// shifted down, overlay xattrs but the opaque one removed, excluded paths and sockets
    /// deleted), so it can become the layer's unpacked directory without a copy. Nothing in
    /// the tree changes until [`super::fix::apply`] runs them, so a refused tree is left as
    /// it was.
    pub fix_in_place: bool,
}

/// What [`pack`] wrote.
pub(crate) struct Packed<W> {
    pub out: W,
    /// Entries written (0: the tree holds nothing, an empty layer).
    pub entries: u64,
    /// With [`PackOptions::fix_in_place`], what [`super::fix::apply`] must do to the tree.
    pub fixes: Vec<Fix>,
}

/// Writes the tarball of `src` to `out`.
pub(crate) fn pack<W: Write>(
    src: &Path,
    opts: &PackOptions<'_>,
    out: W,
) -> Result<Packed<W>, StoreError> {
    let mut packer = Packer {
        src,
        opts,
        builder: tar::Builder::new(out),
        links: HashMap::new(),
        entries: 0,
        fixes: Vec::new(),
    };
    packer.dir(Path::new(""))?;
    let out = packer
        .builder
        .into_inner()
        .map_err(StoreError::io("writing the tarball of", src))?;
    Ok(Packed {
        out,
        entries: packer.entries,
        fixes: packer.fixes,
    })
}

struct Packer<'a, W: Write> {
    src: &'a Path,
    opts: &'a PackOptions<'a>,
    builder: tar::Builder<W>,
    /// (dev, ino) of files with several links → the first path written.
    links: HashMap<(u64, u64), PathBuf>,
    entries: u64,
    fixes: Vec<Fix>,
}

fn header(kind: EntryType, mode: u32, uid: u32, gid: u32, mtime: i64, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode & 0o7777);
    h.set_uid(u64::from(uid));
    h.set_gid(u64::from(gid));
    h.set_mtime(u64::try_from(mtime).unwrap_or(0));
    h.set_size(size);
    h
}

/// One PAX record: `"<len> <key>=<value>\n"`, `len` counting the whole record.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut rec = format!("{len} {key}=").into_bytes();
    rec.extend_from_slice(value);
    rec.push(b'\n');
    rec
}

/// An error mapper for the tree entry `rel` under `src`.
pub(crate) fn at(
    src: &Path,
    op: &'static str,
    rel: &Path,
) -> impl FnOnce(io::Error) -> StoreError + use<> {
    StoreError::io(op, src.join(rel))
}

impl<W: Write> Packer<'_, W> {
    fn dir(&mut self, rel: &Path) -> Result<(), StoreError> {
        let path = self.src.join(rel);
        let mut names: Vec<_> = std::fs::read_dir(&path)
            .map_err(at(self.src, "listing", rel))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(at(self.src, "listing", rel))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let child = rel.join(&name);
            if self.opts.exclude.iter().any(|x| x == &child) {
                if self.opts.fix_in_place {
                    self.fixes.push(Fix::Remove(child));
                }
                continue;
            }
            self.entry(&child)?;
        }
        Ok(())
    }

    fn ids(&self, rel: &Path, meta: &std::fs::Metadata) -> Result<(u32, u32), StoreError> {
        let end = u64::from(self.opts.shift) + u64::from(self.opts.count);
        let down = |id: u32| {
            if id < self.opts.shift || u64::from(id) >= end {
                Err(StoreError::IdOutOfRange {
                    path: Path::new("/").join(rel),
                    id,
                    shift: self.opts.shift,
                    end,
                })
            } else {
                Ok(id - self.opts.shift)
            }
        };
        Ok((down(meta.uid())?, down(meta.gid())?))
    }

    fn entry(&mut self, rel: &Path) -> Result<(), StoreError> {
        let path = self.src.join(rel);
        let meta = path
            .symlink_metadata()
            .map_err(at(self.src, "inspecting", rel))?;
        let ft = meta.file_type();
        if nofollow::is_whiteout(&meta) {
            let name = rel.file_name().map(|n| n.as_bytes()).unwrap_or_default();
            let mut marker = WHITEOUT_PREFIX.as_bytes().to_vec();
            marker.extend_from_slice(name);
            let marker = rel.with_file_name(std::ffi::OsStr::from_bytes(&marker));
            self.marker(&marker)?;
            if self.opts.fix_in_place && (meta.uid(), meta.gid()) != (0, 0) {
                self.fixes.push(Fix::Chown {
                    rel: rel.to_path_buf(),
                    uid: 0,
                    gid: 0,
                    mode: None,
                    capability: None,
                });
            }
            return Ok(());
        }
        if ft.is_socket() {
            if self.opts.fix_in_place {
                self.fixes.push(Fix::Remove(rel.to_path_buf()));
            }
            return Ok(());
        }
        if !ft.is_dir() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key).cloned() {
                let mut h = header(EntryType::Link, 0, 0, 0, 0, 0);
                self.builder.append_link(&mut h, rel, &first).map_err(at(
                    self.src,
                    "writing the tarball entry of",
                    rel,
                ))?;
                self.entries += 1;
                return Ok(());
            }
            self.links.insert(key, rel.to_path_buf());
        }
        let (uid, gid) = self.ids(rel, &meta)?;
        let xattrs = nofollow::xattrs(&path).map_err(at(self.src, "reading the xattrs of", rel))?;
        // A redirected directory or a metadata-only copy-up has its content in a lower layer,
        // which a layer cannot point at: the overlay must be mounted without redirect_dir
        // and metacopy (the kernel's defaults).
        if let Some((k, _)) = xattrs
            .iter()
            .find(|(k, _)| k == "trusted.overlay.redirect" || k == "trusted.overlay.metacopy")
        {
            return Err(StoreError::bad(
                Path::new("/").join(rel),
                format!(
                    "{k} in the upper dir: mount the overlay with redirect_dir=off,metacopy=off"
                ),
            ));
        }
        let opaque = xattrs
            .iter()
            .any(|(k, v)| k == OPAQUE_XATTR && v.as_slice() == b"y");
        let kept: Vec<_> = xattrs
            .iter()
            .filter(|(k, _)| !k.starts_with(OVERLAY_XATTR_PREFIX))
            .collect();
        if !kept.is_empty() {
            let mut data = Vec::new();
            for (k, v) in &kept {
                data.extend(pax_record(&format!("SCHILY.xattr.{k}"), v));
            }
            let mut h = header(EntryType::XHeader, 0o644, 0, 0, 0, data.len() as u64);
            self.builder
                .append_data(&mut h, "././@PaxHeader", data.as_slice())
                .map_err(at(self.src, "writing the tarball entry of", rel))?;
        }
        let mode = meta.mode();
        let mtime = meta.mtime();
        let write = at(self.src, "writing the tarball entry of", rel);
        if ft.is_dir() {
            let mut h = header(EntryType::Directory, mode, uid, gid, mtime, 0);
            self.builder
                .append_data(&mut h, rel, io::empty())
                .map_err(write)?;
        } else if ft.is_symlink() {
            let target =
                std::fs::read_link(&path).map_err(at(self.src, "reading the link", rel))?;
            let mut h = header(EntryType::Symlink, mode, uid, gid, mtime, 0);
            self.builder
                .append_link(&mut h, rel, target)
                .map_err(write)?;
        } else if ft.is_file() {
            let file = OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(&path)
                .map_err(at(self.src, "opening", rel))?;
            let size = meta.len();
            let mut h = header(EntryType::Regular, mode, uid, gid, mtime, size);
            let mut data = Exact::new(file, size);
            self.builder
                .append_data(&mut h, rel, &mut data)
                .map_err(write)?;
            data.check().map_err(at(self.src, "reading", rel))?;
        } else {
            let kind = if ft.is_char_device() {
                EntryType::Char
            } else if ft.is_block_device() {
                EntryType::Block
            } else {
                EntryType::Fifo
            };
            let mut h = header(kind, mode, uid, gid, mtime, 0);
            if kind != EntryType::Fifo {
                let (major, minor) = nofollow::dev_parts(meta.rdev());
                h.set_device_major(major).map_err(at(
                    self.src,
                    "writing the tarball entry of",
                    rel,
                ))?;
                h.set_device_minor(minor).map_err(at(
                    self.src,
                    "writing the tarball entry of",
                    rel,
                ))?;
            }
            self.builder
                .append_data(&mut h, rel, io::empty())
                .map_err(write)?;
        }
        self.entries += 1;
        if self.opts.fix_in_place {
            self.fix(rel, &meta, uid, gid, &xattrs);
        }
        if ft.is_dir() {
            if opaque {
                self.marker(&rel.join(OPAQUE_MARKER))?;
            }
            self.dir(rel)?;
            if self.opts.fix_in_place {
                // Removing excluded children changes the directory's mtime.
                self.fixes.push(Fix::DirMtime(rel.to_path_buf(), mtime));
            }
        }
        Ok(())
    }

    /// A whiteout or opaque marker entry.
    fn marker(&mut self, rel: &Path) -> Result<(), StoreError> {
        let mut h = header(EntryType::Regular, 0, 0, 0, 0, 0);
        self.builder
            .append_data(&mut h, rel, io::empty())
            .map_err(at(self.src, "writing the tarball entry of", rel))?;
        self.entries += 1;
        Ok(())
    }

    /// Records what makes the tree's entry what the tarball recorded.
    fn fix(
        &mut self,
        rel: &Path,
        meta: &std::fs::Metadata,
        uid: u32,
        gid: u32,
        xattrs: &[(String, Vec<u8>)],
    ) {
        if (uid, gid) != (meta.uid(), meta.gid()) {
            self.fixes.push(Fix::Chown {
                rel: rel.to_path_buf(),
                uid,
                gid,
                mode: (!meta.file_type().is_symlink()).then_some(meta.mode()),
                capability: xattrs
                    .iter()
                    .find(|(k, _)| k == "security.capability")
                    .map(|(_, v)| v.clone()),
            });
        }
        for (k, _) in xattrs {
            if k.starts_with(OVERLAY_XATTR_PREFIX) && k != OPAQUE_XATTR {
                self.fixes
                    .push(Fix::StripXattr(rel.to_path_buf(), k.clone()));
            }
        }
    }
}

/// Reads exactly `size` bytes of a file that must not change while it is read.
struct Exact {
    file: io::Take<File>,
    size: u64,
}

impl Exact {
    fn new(file: File, size: u64) -> Self {
        Exact {
            file: file.take(size),
            size,
        }
    }

    fn check(&self) -> io::Result<()> {
        if self.file.limit() != 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "file shrank while it was read (expected {} bytes)",
                    self.size
                ),
            ));
        }
        Ok(())
    }
}

impl Read for &mut Exact {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_count_their_own_length() {
        let r = pax_record("SCHILY.xattr.user.a", b"b");
        let s = String::from_utf8(r.clone()).unwrap();
        let (len, _) = s.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), r.len());
        let long = vec![b'x'; 95];
        let r = pax_record("k", &long);
        let s = String::from_utf8(r.clone()).unwrap();
        assert_eq!(
            s.split_once(' ').unwrap().0.parse::<usize>().unwrap(),
            r.len()
        );
    }
}
