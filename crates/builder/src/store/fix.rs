//! The changes that make a packed upper dir what its tarball says, so it can become the
//! layer's unpacked directory in place: recorded while packing, applied only once the whole
//! tree was accepted.

use std::path::{Path, PathBuf};

use super::StoreError;
use super::nofollow;
use super::pack::at;

/// One change [`apply`] makes to a packed tree; paths are relative to it.
#[derive(Debug)]
pub(crate) enum Fix {
    /// Remove the entry and everything under it.
    Remove(PathBuf),
    /// Own the entry by `uid:gid`, then restore `mode` (unless a symlink) and the file
    /// capability, which `chown` clears.
    Chown {
        rel: PathBuf,
        uid: u32,
        gid: u32,
        mode: Option<u32>,
        capability: Option<Vec<u8>>,
    },
    /// Remove one xattr.
    StripXattr(PathBuf, String),
    /// Put back a directory's mtime once its children have changed.
    DirMtime(PathBuf, i64),
}

/// Applies the fixes of a [`super::pack::pack`] in order.
pub(crate) fn apply(src: &Path, fixes: &[Fix]) -> Result<(), StoreError> {
    for fix in fixes {
        match fix {
            Fix::Remove(rel) => {
                nofollow::remove_any(&src.join(rel)).map_err(at(src, "removing", rel))?;
            }
            Fix::Chown {
                rel,
                uid,
                gid,
                mode,
                capability,
            } => {
                let path = src.join(rel);
                nofollow::chown(&path, *uid, *gid).map_err(at(src, "setting the owner of", rel))?;
                if let Some(mode) = mode {
                    nofollow::chmod(&path, *mode).map_err(at(src, "setting the mode of", rel))?;
                }
                if let Some(cap) = capability {
                    nofollow::set_xattr(&path, "security.capability", cap).map_err(at(
                        src,
                        "setting an xattr of",
                        rel,
                    ))?;
                }
            }
            Fix::StripXattr(rel, name) => {
                nofollow::remove_xattr(&src.join(rel), name).map_err(at(
                    src,
                    "removing an xattr of",
                    rel,
                ))?;
            }
            Fix::DirMtime(rel, secs) => {
                nofollow::set_mtime(&src.join(rel), *secs).map_err(at(
                    src,
                    "setting the mtime of",
                    rel,
                ))?;
            }
        }
    }
    Ok(())
}
