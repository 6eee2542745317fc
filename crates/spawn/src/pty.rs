//! Pseudo-terminals for processes, and their window size as one typed value.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::fcntl::OFlag;
use serde::{Deserialize, Serialize};

/// A terminal's size in character cells. Fields are named at every use, so columns and rows
/// cannot be swapped silently (the ioctl's own struct puts rows first, most callers think
/// columns first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WinSize {
    /// Columns (characters per line).
    pub cols: u16,
    /// Rows (lines).
    pub rows: u16,
}

impl WinSize {
    /// The classic 80×24.
    pub const DEFAULT: WinSize = WinSize { cols: 80, rows: 24 };

    /// A protocol value as one dimension: 0 becomes 1 (the kernel would accept a 0×0
    /// terminal that programs divide by), values above `u16::MAX` are clamped.
    pub fn dimension(v: u32) -> u16 {
        u16::try_from(v.max(1)).unwrap_or(u16::MAX)
    }
}

/// Both ends of a new PTY. Both are close-on-exec and opened without making either the
/// caller's controlling terminal; the child gets the slave as its controlling terminal
/// through [`crate::ChildSetup::controlling_tty`].
#[derive(Debug)]
pub struct Pty {
    /// The side the starter keeps: read output, write input, resize.
    pub master: OwnedFd,
    /// The side that becomes the process's stdin, stdout and stderr.
    pub slave: OwnedFd,
}

/// Opens a PTY of `size`.
pub fn open(size: WinSize) -> io::Result<Pty> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    nix::pty::grantpt(&master)?;
    nix::pty::unlockpt(&master)?;
    let slave_path = nix::pty::ptsname_r(&master)?;
    // std opens with O_CLOEXEC.
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(slave_path)?;
    let master: OwnedFd = master.as_fd().try_clone_to_owned()?;
    set_size(master.as_fd(), size)?;
    Ok(Pty {
        master,
        slave: slave.into(),
    })
}

/// Sets the window size of the terminal behind `fd` (either end of a PTY); the foreground
/// process group gets SIGWINCH.
pub fn set_size(fd: BorrowedFd<'_>, size: WinSize) -> io::Result<()> {
    crate::sys::set_winsize(fd, size)
}

/// The window size of the terminal behind `fd`.
pub fn size(fd: BorrowedFd<'_>) -> io::Result<WinSize> {
    crate::sys::get_winsize(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_round_trips_without_a_swap() {
        let pty = open(WinSize {
            cols: 132,
            rows: 43,
        })
        .unwrap();
        assert_eq!(
            size(pty.slave.as_fd()).unwrap(),
            WinSize {
                cols: 132,
                rows: 43
            }
        );
        set_size(pty.master.as_fd(), WinSize { cols: 90, rows: 30 }).unwrap();
        assert_eq!(
            size(pty.master.as_fd()).unwrap(),
            WinSize { cols: 90, rows: 30 }
        );
    }

    #[test]
    fn dimensions_are_clamped() {
        assert_eq!(WinSize::dimension(0), 1);
        assert_eq!(WinSize::dimension(120), 120);
        assert_eq!(WinSize::dimension(1 << 20), u16::MAX);
    }
}
