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

/// Where an uploaded context is received; the file goes when this drops.
#[derive(Debug)]
pub struct ContextUpload(PathBuf);

impl ContextUpload {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ContextUpload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Drop for ContextDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Builder {
    /// Unpacks a context tar (plain or gzip) held in memory.
    ///
    /// # Errors
    /// When it is not a tar, or an entry would land outside the context.
    pub fn unpack_context(&self, data: &[u8]) -> Result<ContextDir, BuildError> {
        self.unpack_context_from(data)
    }

    /// A file in the builder's work directory to receive an uploaded context into, so that
    /// a large context is streamed to disk rather than held in memory; removed when the
    /// returned guard drops.
    pub fn context_upload_path(&self) -> ContextUpload {
        ContextUpload(
            self.dirs
                .work
                .join(format!("upload-{:016x}.tar", rand::random::<u64>())),
        )
    }

    /// Unpacks a context tar (plain or gzip, told by its first bytes) read from `reader`.
    ///
    /// # Errors
    /// When it is not a tar, or an entry would land outside the context.
    pub fn unpack_context_from(&self, reader: impl Read) -> Result<ContextDir, BuildError> {
        let ctx = self.new_context_dir()?;
        unpack_into(reader, ctx.path())?;
        Ok(ctx)
    }

    /// A new empty directory in the builder's work directory, removed when dropped: the
    /// root of a build context assembled by hand (E2B's `Template.build()` sends its files
    /// step by step).
    ///
    /// # Errors
    /// When the directory cannot be made.
    pub fn new_context_dir(&self) -> Result<ContextDir, BuildError> {
        let dir = self
            .dirs
            .work
            .join(format!("context-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).map_err(BuildError::io("creating", &dir))?;
        Ok(ContextDir(dir))
    }

    /// The builder's work directory (for files a server keeps between requests of one
    /// build, such as E2B's uploaded step files).
    pub fn work_dir(&self) -> &Path {
        &self.dirs.work
    }
}

/// Unpacks a tar (plain or gzip, told by its first bytes) from `reader` into the existing
/// directory `dest`: files, directories, symlinks and hard links, none outside `dest`.
///
/// # Errors
/// When it is not a tar, or an entry would land outside `dest`.
pub fn unpack_into(reader: impl Read, dest: &Path) -> Result<(), BuildError> {
    {
        let ctx_path = dest;
        let mut reader = std::io::BufReader::new(reader);
        let gzip = std::io::BufRead::fill_buf(&mut reader)
            .map(|b| b.starts_with(&[0x1f, 0x8b]))
            .unwrap_or(false);
        let reader: Box<dyn Read> = if gzip {
            Box::new(flate2::read::GzDecoder::new(reader))
        } else {
            Box::new(reader)
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
            let inside = entry.unpack_in(ctx_path).map_err(bad)?;
            if !inside {
                return Err(BuildError::Step {
                    at: "build context".into(),
                    message: format!("entry {} points outside the context", path.display()),
                });
            }
        }
        Ok(())
    }
}
