//! The only module with `unsafe`: the child-side setup between fork and exec, the PTY window
//! size ioctl, and extended attributes (which nix does not wrap).

#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::unistd::{Gid, Uid};

/// Identity a child switches to before exec.
#[derive(Debug, Clone)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// Arranges for the child to inherit no file descriptor beyond stdio and no ignored signal,
/// start a new session (so it and its children form one process
/// group that signals can target), optionally take stdin as its controlling terminal, and
/// switch to `identity` (groups, then gid, then uid: the order that keeps the right to do so).
pub fn child_setup(
    cmd: &mut tokio::process::Command,
    identity: Option<Identity>,
    controlling_tty: bool,
) {
    // Allocated before fork: the closure itself must not allocate.
    let groups: Vec<Gid> = identity
        .as_ref()
        .map(|i| i.groups.iter().map(|g| Gid::from_raw(*g)).collect())
        .unwrap_or_default();
    let setup = move || -> io::Result<()> {
        // Nothing envd inherited or opened may reach the user's program: mark every fd above
        // stdio close-on-exec (closing them here would also close std's exec-error pipe).
        // Best effort: kernels before 5.11 lack the flag, and envd's own fds are CLOEXEC.
        // SAFETY: close_range takes three integers and touches no memory.
        let _ = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        };
        // Ignored signals stay ignored across exec (a shell that started envd in the
        // background ignores SIGINT/SIGQUIT, test runners ignore others): give the user's
        // program default dispositions for all of them. std already clears the mask.
        let default_action = [0u64; 4];
        for sig in 1..=64 {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            // SAFETY: an all-zero kernel `struct sigaction` is SIG_DFL with no flags and an
            // empty mask on every Linux architecture; it is read from a live stack array
            // of 32 bytes (at least the kernel struct's size), and the old action is not
            // requested. The raw syscall also reaches the signals glibc reserves.
            let _ = unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    default_action.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    8usize,
                )
            };
        }
        nix::unistd::setsid()?;
        if controlling_tty {
            // SAFETY: TIOCSCTTY on fd 0 (the PTY slave) takes an int argument; no memory is
            // passed.
            if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        if let Some(id) = &identity {
            nix::unistd::setgroups(&groups)?;
            nix::unistd::setgid(Gid::from_raw(id.gid))?;
            nix::unistd::setuid(Uid::from_raw(id.uid))?;
        }
        Ok(())
    };
    // SAFETY: the closure runs in the forked child before exec and only calls
    // async-signal-safe functions (close_range, rt_sigaction, setsid, ioctl, setgroups, setgid, setuid) on data
    // prepared before the fork; it takes no locks and does not allocate.
    unsafe {
        cmd.pre_exec(setup);
    }
}

/// Sets the window size of a PTY (master or slave fd).
pub fn set_winsize(fd: BorrowedFd<'_>, cols: u16, rows: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which is valid for the call.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCSWINSZ,
            &ws as *const libc::winsize,
        )
    };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

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
