//! Reading an image's file tree on the host: one path looked up through a layer stack, or
//! the whole merged view (an overlay mounted read-only in a private mount namespace of a
//! short-lived thread, so no other process ever sees it and nothing is left mounted).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

/// `path` (absolute, in the image) as the top-most layer that has it shows it: `None` when
/// no layer has it, or a higher layer deleted it (a whiteout) or hid its directory (opaque).
pub(crate) fn lookup(layers: &[PathBuf], path: &Path) -> Option<std::fs::Metadata> {
    let rel = relative(path);
    for layer in layers.iter().rev() {
        let mut dir = layer.clone();
        let mut hidden_below = false;
        for (i, comp) in rel.components().enumerate() {
            dir.push(comp);
            let last = i + 1 == rel.components().count();
            match dir.symlink_metadata() {
                Ok(m) if is_whiteout(&m) => return None,
                Ok(m) if last => return Some(m),
                Ok(m) if m.is_dir() => {
                    if is_opaque(&dir) {
                        hidden_below = true;
                    }
                }
                // A file or symlink where a directory should be: this layer replaced it.
                Ok(_) => return None,
                Err(_) => break,
            }
        }
        if hidden_below {
            return None;
        }
    }
    None
}

/// `path` without its root, `.` and `..` (an image path is always taken from `/`).
pub(crate) fn relative(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn is_whiteout(m: &std::fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    matches!(xattr::get(dir, "trusted.overlay.opaque"), Ok(Some(v)) if v == b"y")
}

/// Runs `f` with the merged view of `layers` (bottom first) at a directory it is given,
/// on a thread of its own whose private mount namespace holds the overlay. A single layer
/// is its own view.
pub(crate) fn with_merged_view<R: Send + 'static>(
    layers: &[PathBuf],
    scratch: &Path,
    f: impl FnOnce(&Path) -> std::io::Result<R> + Send + 'static,
) -> std::io::Result<R> {
    match layers {
        [] => {
            let empty = scratch.join("empty-view");
            std::fs::create_dir_all(&empty)?;
            f(&empty)
        }
        [one] => f(one),
        many => {
            let lowers: Vec<PathBuf> = many.iter().rev().cloned().collect();
            let target = scratch.join("view");
            std::fs::create_dir_all(&target)?;
            std::thread::Builder::new()
                .name("bulkhead-view".into())
                .spawn(move || {
                    unshare(CloneFlags::CLONE_FS | CloneFlags::CLONE_NEWNS)?;
                    mount(
                        None::<&str>,
                        "/",
                        None::<&str>,
                        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                        None::<&str>,
                    )?;
                    // Relative paths from a common parent keep the options within a page.
                    let parent = lowers[0].parent().map(Path::to_path_buf);
                    let common = parent
                        .as_ref()
                        .filter(|p| lowers.iter().all(|l| l.parent() == Some(p.as_path())));
                    let opts = match common {
                        Some(p) => {
                            std::env::set_current_dir(p)?;
                            let names: Vec<String> = lowers
                                .iter()
                                .filter_map(|l| l.file_name())
                                .map(|n| n.to_string_lossy().into_owned())
                                .collect();
                            format!("lowerdir={}", names.join(":"))
                        }
                        None => format!(
                            "lowerdir={}",
                            lowers
                                .iter()
                                .map(|l| l.display().to_string())
                                .collect::<Vec<_>>()
                                .join(":")
                        ),
                    };
                    mount(
                        Some("overlay"),
                        &target,
                        Some("overlay"),
                        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                        Some(opts.as_str()),
                    )?;
                    f(&target)
                })?
                .join()
                .map_err(|_| std::io::Error::other("the merged-view thread panicked"))?
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_drops_root_and_dots() {
        assert_eq!(relative(Path::new("/a/./b/../c")), PathBuf::from("a/c"));
        assert_eq!(relative(Path::new("/../../etc")), PathBuf::from("etc"));
    }

    #[test]
    fn lookup_takes_the_top_layer_and_stops_at_a_replaced_parent() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let low = t.path().join("low");
        let high = t.path().join("high");
        std::fs::create_dir_all(low.join("etc/app")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(low.join("etc/app/conf"), "1").unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(high.join("etc")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(high.join("etc/other"), "22").unwrap_or_else(|e| panic!("{e}"));
        let stack = vec![low.clone(), high.clone()];
        assert_eq!(
            lookup(&stack, Path::new("/etc/app/conf")).map(|m| m.len()),
            Some(1)
        );
        assert_eq!(
            lookup(&stack, Path::new("/etc/other")).map(|m| m.len()),
            Some(2)
        );
        assert!(lookup(&stack, Path::new("/nope")).is_none());
        std::fs::write(high.join("etc/app"), "x").unwrap_or_else(|e| panic!("{e}"));
        assert!(lookup(&stack, Path::new("/etc/app/conf")).is_none());
    }
}
