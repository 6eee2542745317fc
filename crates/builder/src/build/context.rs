//! A build context received as a tar (optionally gzip): unpacked into a directory of the
//! builder's that is removed when the [`ContextDir`] is dropped. Entries are refused when
//! they would land outside it (absolute paths, `..`, writing through a symlink: the tar
//! crate's `unpack_in` checks), and devices are not created.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{BuildError, Builder};

/// An unpacked build context.
#[derive(Debug)]
pub struct ContextDir(PathBuf);

impl ContextDir {
    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ContextDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Builder {
    /// Unpacks a context tar (plain or gzip).
    ///
    /// # Errors
    /// When it is not a tar, or an entry would land outside the context.
    pub fn unpack_context(&self, data: &[u8]) -> Result<ContextDir, BuildError> {
        let dir = self
            .dirs
            .work
            .join(format!("context-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).map_err(BuildError::io("creating", &dir))?;
        let ctx = ContextDir(dir);
        let reader: Box<dyn Read> = if data.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::GzDecoder::new(data))
        } else {
            Box::new(data)
        };
        let mut ar = tar::Archive::new(reader);
        ar.set_preserve_permissions(true);
        ar.set_unpack_xattrs(false);
        let bad = |e: std::io::Error| BuildError::Step {
            at: "build context".into(),
            message: format!("not a valid tar of the template directory: {e}"),
        };
        for entry in ar.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let kind = entry.header().entry_type();
            if !(kind.is_file() || kind.is_dir() || kind.is_symlink() || kind.is_hard_link()) {
                continue;
            }
            let path = entry.path().map_err(bad)?.into_owned();
            if path.is_absolute()
                || path
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(BuildError::Step {
                    at: "build context".into(),
                    message: format!("entry {} points outside the context", path.display()),
                });
            }
            let inside = entry.unpack_in(ctx.path()).map_err(bad)?;
            if !inside {
                return Err(BuildError::Step {
                    at: "build context".into(),
                    message: format!("entry {} points outside the context", path.display()),
                });
            }
        }
        Ok(ctx)
    }
}
