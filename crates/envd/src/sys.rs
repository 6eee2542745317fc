//! The only module with `unsafe`: extended attributes, which nix does not wrap, and the
//! per-thread credential calls of [`crate::identity`]. (Child setup
//! between fork and exec and the PTY ioctls live in `bulkhead_spawn`.)

#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Names of all extended attributes of `path` (not following symlinks).
pub fn list_xattrs(path: &Path) -> io::Result<Vec<String>> {
    let p = c_path(path)?;
    // SAFETY: a null buffer with size 0 asks for the needed size; `p` is NUL-terminated.
    let size = unsafe { libc::llistxattr(p.as_ptr(), std::ptr::null_mut(), 0) };
    if size < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; size as usize];
    // SAFETY: `buf` is valid for `buf.len()` bytes of writes.
    let got = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(got as usize);
    Ok(buf
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect())
}

/// The value of one extended attribute.
pub fn get_xattr(path: &Path, name: &str) -> io::Result<Vec<u8>> {
    let p = c_path(path)?;
    let n = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: `buf` is valid for `buf.len()` bytes of writes; both strings are NUL-terminated.
    let got =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(got as usize);
    Ok(buf)
}

/// Sets one extended attribute.
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let p = c_path(path)?;
    let n = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `value` is valid for `value.len()` bytes of reads; strings are NUL-terminated.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Removes one extended attribute.
pub fn remove_xattr(path: &Path, name: &str) -> io::Result<()> {
    let p = c_path(path)?;
    let n = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: both strings are NUL-terminated.
    let rc = unsafe { libc::lremovexattr(p.as_ptr(), n.as_ptr()) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The calling thread's filesystem uid becomes `uid`; returns the previous one. Linux keeps
/// credentials per thread and the raw syscall changes only this thread's (glibc's `setfsuid`
/// does too, but the raw call makes that independent of the C library).
pub fn set_thread_fsuid(uid: u32) -> u32 {
    // SAFETY: setfsuid takes an integer and cannot fail in a way that touches memory.
    unsafe { libc::syscall(libc::SYS_setfsuid, uid as libc::c_long) as u32 }
}

/// The calling thread's filesystem gid becomes `gid`; returns the previous one.
pub fn set_thread_fsgid(gid: u32) -> u32 {
    // SAFETY: as for setfsuid.
    unsafe { libc::syscall(libc::SYS_setfsgid, gid as libc::c_long) as u32 }
}

/// The calling thread's supplementary groups. The raw syscall, not glibc's `setgroups`, which
/// changes every thread of the process (it broadcasts credential changes to all threads).
pub fn set_thread_groups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: `groups` is valid for `groups.len()` gid_t reads (gid_t is u32 on Linux).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_setgroups,
            groups.len() as libc::c_long,
            groups.as_ptr(),
        )
    };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The calling thread's supplementary groups.
pub fn thread_groups() -> io::Result<Vec<u32>> {
    // SAFETY: size 0 asks for the count and writes nothing.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getgroups,
            0 as libc::c_long,
            std::ptr::null_mut::<u32>(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u32; n as usize];
    // SAFETY: `buf` is valid for `buf.len()` gid_t writes.
    let got = unsafe {
        libc::syscall(
            libc::SYS_getgroups,
            buf.len() as libc::c_long,
            buf.as_mut_ptr(),
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(got as usize);
    Ok(buf)
}
