//! Adding layers: a tarball from elsewhere ([`ImageStore::add_layer_tar`]) or a build
//! sandbox's overlay upper dir ([`ImageStore::capture_upper`]).

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::digest::{HashReader, HashWriter};
use super::pack::{PackOptions, Packed, apply, pack};
use super::unpack::{OPAQUE_XATTR, OVERLAY_XATTR_PREFIX, unpack};
use super::{
    Digest, ImageStore, LayerInfo, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR, StoreError,
    nofollow,
};

/// How [`ImageStore::capture_upper`] reads an upper dir.
#[derive(Debug, Clone, Default)]
pub struct CaptureOptions {
    /// Host uid (and gid) of the sandbox's root: an owner `uid_shift + N` in the upper dir is
    /// recorded as `N`.
    pub uid_shift: u32,
    /// Number of ids the sandbox has: owners outside `uid_shift..uid_shift + id_count` are an
    /// error naming the file.
    pub id_count: u32,
    /// Absolute in-image paths left out of the layer with everything under them (`/etc/hosts`,
    /// `/etc/resolv.conf`, `/etc/hostname`, `/run/secrets`, `/proc`, `/sys`, `/dev`, `/tmp`).
    pub exclude: Vec<PathBuf>,
    /// Mount points the runtime created: removed when they are an empty directory or an empty
    /// file, then each parent directory that is left empty (and is not opaque).
    pub prune_empty: Vec<PathBuf>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether the file starts with the gzip magic.
pub(crate) fn is_gzip(path: &Path) -> Result<bool, StoreError> {
    let mut file = File::open(path).map_err(StoreError::io("opening", path))?;
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        let n = file
            .read(&mut magic[got..])
            .map_err(StoreError::io("reading", path))?;
        if n == 0 {
            return Ok(false);
        }
        got += n;
    }
    Ok(magic == GZIP_MAGIC)
}

/// `path` relative to `/`, for matching entries of a tree.
fn in_image(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect()
}

impl ImageStore {
    /// Stores a layer tarball (plain or gzip, told by its magic) and unpacks it.
    ///
    /// With `expected`, the blob's digest must equal it, or nothing is stored
    /// ([`StoreError::DigestMismatch`]). A blob already stored with its layer unpacked is
    /// reused without reading `tar` again (when `expected` names it) or unpacking again.
    /// Afterwards the blob is at [`ImageStore::blob_path`] and the layer at
    /// [`ImageStore::layer_dir`]. Unsafe entries are refused ([`StoreError::UnsafeEntry`]),
    /// leaving nothing behind.
    pub fn add_layer_tar(
        &self,
        tar: &Path,
        expected: Option<&Digest>,
    ) -> Result<LayerInfo, StoreError> {
        let gzip = is_gzip(tar)?;
        let media_type = if gzip {
            MEDIA_TYPE_LAYER_GZIP
        } else {
            MEDIA_TYPE_LAYER_TAR
        };
        if let Some(d) = expected
            && let Some(info) = self.known_layer(d, media_type)?
        {
            return Ok(info);
        }
        // The blob: copied into tmp/ while hashed.
        let tmp_blob = self.tmp_path("blob");
        let copied = self.copy_hashed(tar, &tmp_blob);
        let (digest, size) = match copied {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp_blob);
                return Err(e);
            }
        };
        if let Some(expected) = expected
            && expected != &digest
        {
            let _ = std::fs::remove_file(&tmp_blob);
            return Err(StoreError::DigestMismatch {
                path: tar.to_path_buf(),
                expected: expected.clone(),
                actual: digest,
            });
        }
        let result = self.unpack_blob(&tmp_blob, gzip, &digest);
        let diff_id = match result {
            Ok(d) => d,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp_blob);
                return Err(e);
            }
        };
        self.commit_blob(&tmp_blob, &digest)?;
        if gzip {
            self.write_diffid(&digest, &diff_id)?;
        }
        Ok(LayerInfo {
            diff_id,
            digest,
            size,
            media_type: media_type.to_string(),
        })
    }

    /// The layer of blob `d` when both are already in the store.
    fn known_layer(&self, d: &Digest, media_type: &str) -> Result<Option<LayerInfo>, StoreError> {
        let blob = self.blob_path(d);
        let Ok(meta) = blob.metadata() else {
            return Ok(None);
        };
        let diff_id = if media_type == MEDIA_TYPE_LAYER_GZIP {
            match std::fs::read_to_string(self.diffid_path(d)) {
                Ok(s) => Digest::parse(s.trim())?,
                Err(_) => return Ok(None),
            }
        } else {
            d.clone()
        };
        if !self.has_layer(&diff_id) {
            return Ok(None);
        }
        Ok(Some(LayerInfo {
            diff_id,
            digest: d.clone(),
            size: meta.len(),
            media_type: media_type.to_string(),
        }))
    }

    fn copy_hashed(&self, src: &Path, dst: &Path) -> Result<(Digest, u64), StoreError> {
        let input = File::open(src).map_err(StoreError::io("opening", src))?;
        let out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dst)
            .map_err(StoreError::io("creating", dst))?;
        let mut writer = HashWriter::new(BufWriter::new(out));
        io::copy(&mut BufReader::new(input), &mut writer)
            .map_err(StoreError::io("copying the blob", src))?;
        let (digest, size, out) = writer.finish();
        let file = out
            .into_inner()
            .map_err(|e| StoreError::io("writing", dst)(e.into_error()))?;
        file.sync_all().map_err(StoreError::io("syncing", dst))?;
        Ok((digest, size))
    }

    /// Unpacks the blob at `blob` (unless its layer is already there) and returns its diff_id.
    fn unpack_blob(&self, blob: &Path, gzip: bool, digest: &Digest) -> Result<Digest, StoreError> {
        if !gzip && self.has_layer(digest) {
            return Ok(digest.clone());
        }
        let file = File::open(blob).map_err(StoreError::io("opening", blob))?;
        let reader: Box<dyn Read> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
        } else {
            Box::new(BufReader::new(file))
        };
        let dir = self.tmp_path("layer");
        self.make_layer_root(&dir)?;
        let unpacked = unpack(HashReader::new(reader), &dir)
            .and_then(|r| r.finish().map_err(StoreError::io("reading", blob)));
        let diff_id = match unpacked {
            Ok((diff_id, _)) => diff_id,
            Err(e) => {
                let _ = nofollow::remove_any(&dir);
                return Err(e);
            }
        };
        self.commit_layer(&dir, &diff_id)?;
        Ok(diff_id)
    }

    fn make_layer_root(&self, dir: &Path) -> Result<(), StoreError> {
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(dir)
            .map_err(StoreError::io("creating", dir))?;
        // The mode must not depend on the umask: the layer root is the sandbox's `/`.
        nofollow::chmod(dir, 0o755).map_err(StoreError::io("setting the mode of", dir))
    }

    /// Renames a complete blob into place (replacing an equal one is harmless).
    fn commit_blob(&self, tmp: &Path, digest: &Digest) -> Result<(), StoreError> {
        let dst = self.blob_path(digest);
        std::fs::rename(tmp, &dst).map_err(|e| {
            let _ = std::fs::remove_file(tmp);
            StoreError::io("storing the blob", &dst)(e)
        })
    }

    /// Renames a complete unpacked layer into place, after syncing its file system. When
    /// another writer put the same layer there first, ours is dropped and theirs kept.
    fn commit_layer(&self, tmp: &Path, diff_id: &Digest) -> Result<(), StoreError> {
        let dst = self.layer_dir(diff_id);
        let dir = File::open(tmp).map_err(StoreError::io("opening", tmp))?;
        rustix::fs::syncfs(&dir).map_err(|e| StoreError::io("syncing", tmp)(e.into()))?;
        drop(dir);
        match std::fs::rename(tmp, &dst) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = nofollow::remove_any(tmp);
                if dst.is_dir() {
                    Ok(())
                } else {
                    Err(StoreError::io("storing the layer", &dst)(e))
                }
            }
        }
    }

    fn write_diffid(&self, blob: &Digest, diff_id: &Digest) -> Result<(), StoreError> {
        let tmp = self.tmp_path("diffid");
        let dst = self.diffid_path(blob);
        std::fs::write(&tmp, diff_id.as_str()).map_err(StoreError::io("writing", &tmp))?;
        std::fs::rename(&tmp, &dst).map_err(StoreError::io("storing", &dst))
    }

    /// Captures the overlay upper dir `upper` of a stopped build sandbox as a layer.
    ///
    /// First the `prune_empty` mount points are removed from `upper` (see
    /// [`CaptureOptions`]); then the rest, minus `exclude`, becomes a deterministic layer
    /// tarball (the blob, uncompressed: digest = diff_id) and an unpacked layer in image ids.
    /// When `upper` is on the store's file system it is renamed into the store and fixed in
    /// place (owners shifted down, overlay xattrs but the opaque one removed), so `upper` is
    /// gone afterwards; otherwise the tarball is unpacked and `upper` stays. Returns `None`,
    /// leaving `upper` where it was, when nothing is left to capture (an empty layer).
    pub fn capture_upper(
        &self,
        upper: &Path,
        opts: &CaptureOptions,
    ) -> Result<Option<LayerInfo>, StoreError> {
        for p in &opts.prune_empty {
            prune(upper, &in_image(p))?;
        }
        let exclude: Vec<PathBuf> = opts.exclude.iter().map(|p| in_image(p)).collect();
        if !has_content(upper, &exclude)? {
            return Ok(None);
        }
        let moved = self.tmp_path("upper");
        let in_place = std::fs::rename(upper, &moved).is_ok();
        let src = if in_place { moved.as_path() } else { upper };
        let pack_opts = PackOptions {
            shift: opts.uid_shift,
            count: opts.id_count,
            exclude: &exclude,
            fix_in_place: in_place,
        };
        let tmp_blob = self.tmp_path("blob");
        let (digest, size, packed) = match self.pack_to(src, &pack_opts, &tmp_blob) {
            Ok(v) => v,
            Err(e) => {
                // Refused before anything in the tree changed: the upper dir goes back.
                let _ = std::fs::remove_file(&tmp_blob);
                if in_place {
                    let _ = std::fs::rename(&moved, upper);
                }
                return Err(e);
            }
        };
        let stored = if in_place {
            apply(&moved, &packed.fixes)
                .and_then(|()| fix_root(&moved))
                .and_then(|()| self.commit_layer(&moved, &digest))
        } else {
            self.unpack_blob(&tmp_blob, false, &digest).map(|_| ())
        };
        if let Err(e) = stored {
            let _ = std::fs::remove_file(&tmp_blob);
            let _ = nofollow::remove_any(&moved);
            return Err(e);
        }
        self.commit_blob(&tmp_blob, &digest)?;
        Ok(Some(LayerInfo {
            diff_id: digest.clone(),
            digest,
            size,
            media_type: MEDIA_TYPE_LAYER_TAR.to_string(),
        }))
    }

    /// Packs `src` into a new blob file at `dst`: its digest, size, entry count and fixes.
    pub(crate) fn pack_to(
        &self,
        src: &Path,
        opts: &PackOptions<'_>,
        dst: &Path,
    ) -> Result<(Digest, u64, Packed<()>), StoreError> {
        let out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dst)
            .map_err(StoreError::io("creating", dst))?;
        let packed = pack(src, opts, HashWriter::new(BufWriter::new(out)))?;
        let (digest, size, out) = packed.out.finish();
        let mut file = out
            .into_inner()
            .map_err(|e| StoreError::io("writing", dst)(e.into_error()))?;
        file.flush().map_err(StoreError::io("writing", dst))?;
        file.sync_all().map_err(StoreError::io("syncing", dst))?;
        let rest = Packed {
            out: (),
            entries: packed.entries,
            fixes: packed.fixes,
        };
        Ok((digest, size, rest))
    }
}

/// Removes the image path `rel` from the upper dir `upper` when it is an empty directory or
/// an empty regular file, then its parents while they are left empty and are not opaque.
/// Nothing is done through a symlink: a path whose parents are not all real directories is
/// left alone.
fn prune(upper: &Path, rel: &Path) -> Result<(), StoreError> {
    let mut path = upper.to_path_buf();
    let names: Vec<_> = rel.components().collect();
    let Some((_, parents)) = names.split_last() else {
        return Ok(());
    };
    for c in parents {
        path.push(c);
        match path.symlink_metadata() {
            Ok(m) if m.is_dir() => {}
            _ => return Ok(()),
        }
    }
    let target = upper.join(rel);
    let empty = match target.symlink_metadata() {
        Ok(m) if m.is_dir() => dir_is_empty(&target)? && !is_opaque(&target),
        Ok(m) if m.is_file() => m.len() == 0,
        _ => false,
    };
    if !empty {
        return Ok(());
    }
    nofollow::remove_any(&target).map_err(StoreError::io("removing", &target))?;
    let mut dir = target.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        if d == upper || !d.starts_with(upper) || !dir_is_empty(&d)? || is_opaque(&d) {
            break;
        }
        std::fs::remove_dir(&d).map_err(StoreError::io("removing", &d))?;
        dir = d.parent().map(Path::to_path_buf);
    }
    Ok(())
}

/// Whether packing `upper` writes any entry: a top-level entry that is not excluded and not
/// a socket (every other entry is written, an empty directory too).
fn has_content(upper: &Path, exclude: &[PathBuf]) -> Result<bool, StoreError> {
    use std::os::unix::fs::FileTypeExt;
    for entry in std::fs::read_dir(upper).map_err(StoreError::io("listing", upper))? {
        let entry = entry.map_err(StoreError::io("listing", upper))?;
        if exclude.iter().any(|x| x.as_os_str() == entry.file_name()) {
            continue;
        }
        let ft = entry
            .file_type()
            .map_err(StoreError::io("inspecting", entry.path()))?;
        if !ft.is_socket() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The root of a renamed upper dir as every layer root is: 0755, 0:0, no overlay xattrs.
fn fix_root(root: &Path) -> Result<(), StoreError> {
    let xattrs = nofollow::xattrs(root).map_err(StoreError::io("reading the xattrs of", root))?;
    for (k, _) in xattrs
        .iter()
        .filter(|(k, _)| k.starts_with(OVERLAY_XATTR_PREFIX))
    {
        nofollow::remove_xattr(root, k).map_err(StoreError::io("removing an xattr of", root))?;
    }
    nofollow::chown(root, 0, 0)
        .and_then(|()| nofollow::chmod(root, 0o755))
        .map_err(StoreError::io("setting the owner of", root))
}

fn dir_is_empty(path: &Path) -> Result<bool, StoreError> {
    let mut entries = std::fs::read_dir(path).map_err(StoreError::io("listing", path))?;
    Ok(entries.next().is_none())
}

fn is_opaque(path: &Path) -> bool {
    nofollow::xattrs(path)
        .map(|x| {
            x.iter()
                .any(|(k, v)| k == OPAQUE_XATTR && v.as_slice() == b"y")
        })
        .unwrap_or(false)
}
