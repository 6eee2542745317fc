//! Idmapped mounts through the new mount API (`open_tree`, `mount_setattr`, `move_mount`).
//!
//! util-linux on Debian 12 is too old for `X-mount.idmap`, and nix has no wrappers for these
//! syscalls, so they are called through `libc::syscall`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::path::{Missing, walk_beneath};

const OPEN_TREE_CLONE: libc::c_uint = 1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x0000_0004;

/// `struct mount_attr` from `<linux/mount.h>`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// `open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)`: a detached copy of the mount tree at `source`.
fn clone_tree(source: &Path) -> io::Result<OwnedFd> {
    let src = cpath(source)?;
    // SAFETY: `src` is a valid NUL-terminated string that outlives the call; the flags are the
    // documented ones; the returned value is checked before being used as a descriptor.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            src.as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE,
        )
    };
    if tree < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `tree` is a fresh descriptor returned by open_tree that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(tree as libc::c_int) })
}

/// `mount_setattr` on a whole detached tree: sets `attr_set`, with `userns` for an idmap.
fn set_tree_attrs(tree: &OwnedFd, attr_set: u64, userns: Option<&OwnedFd>) -> io::Result<()> {
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.map(|u| u.as_raw_fd() as u64).unwrap_or(0),
    };
    let empty = c"";
    // SAFETY: `attr` is a properly laid out `struct mount_attr` living across the call, and its
    // size is passed; `empty` is a valid C string used with AT_EMPTY_PATH on a valid fd.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `move_mount` of a detached tree onto `target` (resolved in the caller's mount namespace).
fn attach_tree(tree: &OwnedFd, target: &Path) -> io::Result<()> {
    let dst = cpath(target)?;
    let empty = c"";
    // SAFETY: both strings are valid NUL-terminated C strings; `tree` is a valid detached
    // mount descriptor.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            dst.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Attaches a read-only, nosuid, nodev clone of the tree at `source` to `target` (an existing
/// directory), with ownership shifted through the user namespace `userns`: a file owned by
/// host uid 0 appears owned by the namespace's root.
///
/// Requires CAP_SYS_ADMIN in the initial user namespace, and a filesystem that supports
/// idmapped mounts (ext4, xfs, btrfs, tmpfs, overlay).
pub fn bind_idmapped_readonly(source: &Path, target: &Path, userns: &OwnedFd) -> io::Result<()> {
    let tree = clone_tree(source)?;
    let attrs = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    set_tree_attrs(&tree, attrs, Some(userns))?;
    attach_tree(&tree, target)
}

/// A clone of the host tree at `source`, `nosuid,nodev` (and read-only if asked), idmapped
/// through `userns` when given and the filesystem allows it. Returns whether it is idmapped:
/// a filesystem without idmap support (FUSE, which needs its server's consent) gets a plain
/// clone instead.
pub fn clone_for_sandbox(
    source: &Path,
    read_only: bool,
    userns: Option<&OwnedFd>,
) -> io::Result<(OwnedFd, bool)> {
    // Never a way in for a set-uid binary or a device node, writable or not.
    let rdonly = if read_only { MOUNT_ATTR_RDONLY } else { 0 };
    let attrs = rdonly | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if let Some(ns) = userns {
        let tree = clone_tree(source)?;
        match set_tree_attrs(&tree, attrs | MOUNT_ATTR_IDMAP, Some(ns)) {
            Ok(()) => return Ok((tree, true)),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL | libc::EOPNOTSUPP | libc::EPERM)
                ) => {}
            Err(e) => return Err(e),
        }
    }
    let tree = clone_tree(source)?;
    set_tree_attrs(&tree, attrs, None)?;
    Ok((tree, false))
}

/// [`clone_for_sandbox`], then attached at `target` (in the caller's mount namespace).
pub fn bind_for_sandbox(
    source: &Path,
    target: &Path,
    read_only: bool,
    userns: Option<&OwnedFd>,
) -> io::Result<bool> {
    let (tree, idmapped) = clone_for_sandbox(source, read_only, userns)?;
    attach_tree(&tree, target)?;
    Ok(idmapped)
}

/// Attaches a clone of the host tree at `source` to `target` inside the mount namespace of
/// process `pid` (a running sandbox's init), read-only if asked, idmapped through the
/// sandbox's user namespace with `idmap` (see [`crate::BindMount::idmap`]). `target` is an absolute path
/// as the sandbox sees it (always `nosuid,nodev`); it is created (owned by `owner`) when
/// missing, and refused when any component of it is a symlink (sandboxed code may have
/// planted one).
///
/// Runs on a short-lived thread of its own: `setns` into another mount namespace changes the
/// thread's root, so the caller's threads are never affected.
pub fn attach_into(
    pid: i32,
    source: &Path,
    target: &Path,
    read_only: bool,
    owner: u32,
    idmap: bool,
) -> io::Result<()> {
    let userns: Option<OwnedFd> = if idmap {
        Some(std::fs::File::open(format!("/proc/{pid}/ns/user"))?.into())
    } else {
        None
    };
    let (tree, _) = clone_for_sandbox(source, read_only, userns.as_ref())?;
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))?;
    let target = target.to_path_buf();
    std::thread::Builder::new()
        .name("bulkhead-attach".into())
        .spawn(move || -> io::Result<()> {
            // A thread sharing its filesystem context with others may not change mount
            // namespace: give this thread its own first.
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS)?;
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNS)?;
            // From inside the sandbox's mount namespace, "/" is the sandbox's root.
            let missing = Missing::CreateDirs { owner, mode: 0o755 };
            let dst = walk_beneath(Path::new("/"), &target, missing)?;
            attach_tree(&tree, &dst)
        })?
        .join()
        .map_err(|_| io::Error::other("attach thread panicked"))?
}
