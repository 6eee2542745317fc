//! Capturing a build sandbox's overlay upper dir as a layer ([`ImageStore::capture_upper`]).

use std::path::{Path, PathBuf};

use super::fix::apply;
use super::pack::PackOptions;
use super::unpack::{OPAQUE_XATTR, OVERLAY_XATTR_PREFIX};
use super::{ImageStore, LayerInfo, MEDIA_TYPE_LAYER_TAR, StoreError, nofollow};

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

/// `path` relative to `/`, for matching entries of a tree.
fn in_image(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect()
}

impl ImageStore {
    /// Captures the overlay upper dir `upper` of a stopped build sandbox as a layer.
    ///
    /// First the `prune_empty` mount points are removed from `upper` (see
    /// [`CaptureOptions`]); then the rest, minus `exclude`, becomes a deterministic layer
    /// tarball (the blob, uncompressed: digest = diff_id) and an unpacked layer in image ids.
    /// When `upper` is on the store's file system it is renamed into the store and fixed in
    /// place (owners shifted down, overlay xattrs but the opaque one removed), so `upper` is
    /// gone afterwards; otherwise the tarball is unpacked and `upper` stays. Returns `None`,
    /// leaving `upper` where it was, when nothing is left to capture (an empty layer).
    ///
    /// Precondition: nothing writes to `upper` any more (the sandbox is frozen or gone), and
    /// it is not resumed afterwards: on the store's file system the tree becomes the store's
    /// and its owners change. A refused capture ([`StoreError::IdOutOfRange`], an unreadable
    /// file) changes nothing in `upper` but the pruned mount points.
    #[tracing::instrument(level = "debug", skip_all, fields(path = %upper.display()))]
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
        let stored = if in_place && self.has_layer(&digest) {
            // Captured before (the same step on the same parent): nothing to fix or sync.
            nofollow::remove_any(&moved).map_err(StoreError::io("removing", &moved))
        } else if in_place {
            apply(&moved, &packed.fixes)
                .and_then(|()| fix_root(&moved))
                .and_then(|()| self.commit_layer(&moved, &digest))
        } else {
            self.unpack_blob(&tmp_blob, super::layer::Compression::None, &digest)
                .map(|_| ())
        };
        if let Err(e) = stored {
            let _ = std::fs::remove_file(&tmp_blob);
            let _ = nofollow::remove_any(&moved);
            return Err(e);
        }
        self.commit_blob(&tmp_blob, &digest)?;
        tracing::debug!(diff_id = %digest, size, in_place, "upper dir captured");
        Ok(Some(LayerInfo {
            diff_id: digest.clone(),
            digest,
            size,
            media_type: MEDIA_TYPE_LAYER_TAR.to_string(),
        }))
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
