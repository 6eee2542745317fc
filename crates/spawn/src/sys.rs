//! The only module with `unsafe`: fork, exec and `_exit`, the signal-disposition reset, the
//! close-on-exec sweep, and the two terminal ioctls (none of which nix wraps safely).
//!
//! Everything here that runs in a forked child is async-signal-safe: raw syscalls on integers
//! and on memory the parent prepared before the fork. Nothing allocates or takes a lock.

#![allow(unsafe_code)]

use std::ffi::{CStr, c_char};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use nix::errno::Errno;
use nix::unistd::Pid;

use crate::pty::WinSize;

/// Sets every signal but SIGKILL and SIGSTOP (which cannot be changed) to its default
/// disposition: ignored signals stay ignored across exec, handlers do not.
pub(crate) fn reset_signal_dispositions() -> Result<(), Errno> {
    let default_action = [0u64; 4];
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: an all-zero kernel `struct sigaction` is SIG_DFL with no flags and an empty
        // mask on every Linux architecture; it is read from a live stack array of 32 bytes
        // (at least the kernel struct's size), and the old action is not requested. The raw
        // syscall also reaches the real-time signals glibc reserves for itself.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                default_action.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
        if rc == -1 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// Marks every descriptor from 3 upwards close-on-exec, so that after exec the process holds
/// only its stdio. Closing them now instead would also close the exec-error pipes (ours and
/// std's), which must stay open until exec succeeds.
pub(crate) fn cloexec_from_3() -> Result<(), Errno> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC takes three integers and only sets flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    // Kernels before 5.11: walk the descriptor table up to the soft limit (capped; a
    // descriptor beyond 65 536 would have to be opened on purpose).
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into a live stack value.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == -1 {
        return Err(Errno::last());
    }
    let top = limit.rlim_cur.min(1 << 16) as RawFd;
    for fd in 3..top {
        // SAFETY: F_SETFD on a descriptor number takes an integer; EBADF for unused numbers
        // is expected and ignored.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// Makes the terminal on fd 0 the controlling terminal of the calling session leader.
pub(crate) fn set_controlling_tty_on_stdin() -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal from another session).
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } == -1 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Clears close-on-exec on `fd` (dup2 onto itself does not).
pub(crate) fn clear_cloexec(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: F_SETFD with flags 0 on a descriptor number takes an integer.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Sets the window size of the terminal behind `fd` (either side of a PTY).
pub(crate) fn set_winsize(fd: BorrowedFd<'_>, size: WinSize) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from a pointer that is valid for the call.
    if unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCSWINSZ,
            &ws as *const libc::winsize,
        )
    } == -1
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads the window size of the terminal behind `fd`.
pub(crate) fn get_winsize(fd: BorrowedFd<'_>) -> io::Result<WinSize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` through a pointer to a live stack value.
    if unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCGWINSZ,
            &mut ws as *mut libc::winsize,
        )
    } == -1
    {
        return Err(io::Error::last_os_error());
    }
    Ok(WinSize {
        cols: ws.ws_col,
        rows: ws.ws_row,
    })
}

/// Replaces the process image; returns only on failure, with the errno. `argv` and `envp`
/// must be NULL-terminated arrays of pointers to NUL-terminated strings that outlive the call.
pub(crate) fn execve(path: &CStr, argv: &[*const c_char], envp: &[*const c_char]) -> Errno {
    debug_assert!(argv.last().is_some_and(|p| p.is_null()));
    debug_assert!(envp.last().is_some_and(|p| p.is_null()));
    // SAFETY: `path` is NUL-terminated; both arrays end with a null pointer and point into
    // CStrings the caller keeps alive (see the precondition above). execve reads them only.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Errno::last()
}

/// Forks. In the child, runs `child` (which must only make async-signal-safe calls on memory
/// prepared before this call: the parent may be multi-threaded) and then `_exit(127)`; the
/// parent gets the child's pid.
pub(crate) fn fork_into(child: impl FnOnce()) -> Result<Pid, Errno> {
    // SAFETY: the child side only runs `child`, whose contract (above) is what makes a fork
    // of a multi-threaded process sound, and leaves through `_exit`, never returning into
    // the caller's stack frames.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(child),
        nix::unistd::ForkResult::Child => {
            child();
            // SAFETY: _exit ends the child at once, skipping atexit handlers and stdio buffers
            // that belong to the parent.
            unsafe { libc::_exit(127) }
        }
    }
}

/// Has std run `setup` in the child it forks for `cmd`, after std's own stdio and working
/// directory setup and before exec.
pub(crate) fn pre_exec<F>(cmd: &mut std::process::Command, setup: F)
where
    F: FnMut() -> io::Result<()> + Send + Sync + 'static,
{
    use std::os::unix::process::CommandExt;
    // SAFETY: every `setup` this crate passes only makes async-signal-safe calls on data
    // moved into the closure before the fork (see `ChildSetup::apply`); it allocates nothing
    // and takes no lock.
    unsafe {
        cmd.pre_exec(setup);
    }
}
