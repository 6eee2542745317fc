//! The one path walker for paths inside a sandbox's tree, which is untrusted: an image or
//! sandboxed code may have put a symlink anywhere in it, and the host (root, in the host's
//! view of the tree) must never follow one out of the tree.

use std::io;
use std::path::{Component, Path, PathBuf};

use nix::unistd::{Gid, Uid, chown};

/// What [`walk_beneath`] does with components that do not exist.
#[derive(Debug, Clone, Copy)]
pub enum Missing {
    /// Leave them: the returned path may not exist.
    Leave,
    /// Create them as directories owned by host uid and gid `owner`: the last one with
    /// `mode`, the ones before it 0755.
    CreateDirs {
        /// Host uid and gid of the new directories.
        owner: u32,
        /// Mode of the last directory.
        mode: u32,
    },
}

/// Walking a path was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// A component is a symlink (named as the tree sees it).
    #[error("{0} is a symlink")]
    Symlink(PathBuf),
    /// The path has `..` or is relative.
    #[error("{0} must be absolute and normalised")]
    NotNormal(PathBuf),
    /// A component (named as the tree sees it) could not be inspected or created.
    #[error("{path}")]
    Io {
        /// The component.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl WalkError {
    /// The errno this failure corresponds to (`ELOOP` for a symlink, as `O_NOFOLLOW` reports).
    pub fn errno(&self) -> Option<i32> {
        match self {
            WalkError::Symlink(_) => Some(libc::ELOOP),
            WalkError::NotNormal(_) => Some(libc::EINVAL),
            WalkError::Io { source, .. } => source.raw_os_error(),
        }
    }
}

impl From<WalkError> for io::Error {
    fn from(e: WalkError) -> Self {
        match e {
            WalkError::Io { source, .. } => source,
            other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
        }
    }
}

/// Resolves `target`, an absolute path inside the tree at `root`, to the host path under
/// `root`, one component at a time. Refuses `..` and relative paths, and any component that
/// exists and is a symlink (the last one included). With [`Missing::CreateDirs`], missing
/// components are created as directories; with [`Missing::Leave`] the walk stops checking at
/// the first missing component (nothing below it can exist).
///
/// The check is by `lstat`, so it holds only while nothing else changes the tree: at launch
/// nothing runs in the sandbox yet; a caller working on a running sandbox must act from inside
/// its mount namespace, where a symlink swapped in later still resolves inside the sandbox.
pub fn walk_beneath(root: &Path, target: &Path, missing: Missing) -> Result<PathBuf, WalkError> {
    if !target.is_absolute() {
        return Err(WalkError::NotNormal(target.to_path_buf()));
    }
    let names: Vec<_> = target
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect();
    let mut path = root.to_path_buf();
    // The same path as the tree sees it, for errors.
    let mut inner = PathBuf::from("/");
    for (i, comp) in names.iter().enumerate() {
        let Component::Normal(name) = comp else {
            return Err(WalkError::NotNormal(target.to_path_buf()));
        };
        path.push(name);
        inner.push(name);
        let io = |source| WalkError::Io {
            path: inner.clone(),
            source,
        };
        match path.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => return Err(WalkError::Symlink(inner)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => match missing {
                Missing::Leave => {
                    // Nothing below a missing component exists; the rest only has to be normal.
                    if names[i..].iter().all(|c| matches!(c, Component::Normal(_))) {
                        for c in &names[i + 1..] {
                            path.push(c);
                        }
                        return Ok(path);
                    }
                    return Err(WalkError::NotNormal(target.to_path_buf()));
                }
                Missing::CreateDirs { owner, mode } => {
                    let mode = if i + 1 == names.len() { mode } else { 0o755 };
                    make_dir(&path, owner, mode).map_err(io)?;
                }
            },
            Err(e) => return Err(io(e)),
        }
    }
    Ok(path)
}

fn make_dir(path: &Path, owner: u32, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir(path)?;
    std::fs::set_permissions(path, PermissionsExt::from_mode(mode))?;
    chown(path, Some(Uid::from_raw(owner)), Some(Gid::from_raw(owner)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_symlinks_and_dotdot_and_creates_the_rest() {
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/", root.path().join("up")).unwrap();
        let walk = |t: &str, m| walk_beneath(root.path(), Path::new(t), m);
        assert!(matches!(
            walk("/up/etc", Missing::Leave),
            Err(WalkError::Symlink(_))
        ));
        assert!(matches!(
            walk("/up", Missing::Leave),
            Err(WalkError::Symlink(_))
        ));
        assert!(matches!(
            walk("/a/../up", Missing::Leave),
            Err(WalkError::NotNormal(_))
        ));
        assert!(matches!(
            walk("rel", Missing::Leave),
            Err(WalkError::NotNormal(_))
        ));
        let p = walk("/a/b", Missing::Leave).unwrap();
        assert_eq!(p, root.path().join("a/b"));
        assert!(!p.exists());
        let me = nix::unistd::getuid().as_raw();
        let p = walk(
            "/a/./b",
            Missing::CreateDirs {
                owner: me,
                mode: 0o700,
            },
        )
        .unwrap();
        assert!(p.is_dir());
        assert_eq!(walk("/a/b", Missing::Leave).unwrap(), p);
    }
}
