//! Work done inside a sandbox's namespaces, each on a short-lived thread of its own:
//! `setns` changes only the calling thread, so the caller's threads never leave the host's
//! namespaces.

use std::fs::File;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use nix::fcntl::{OFlag, open};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::stat::Mode;

use crate::link;
use crate::netlink::Socket;

/// Name of the sandbox's interface.
pub(crate) const PEER: &str = "eth0";

fn on_thread<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    std::thread::Builder::new()
        .name("bulkhead-net".into())
        .spawn(f)?
        .join()
        .map_err(|_| io::Error::other("network namespace thread panicked"))?
}

/// Addresses `eth0` in the namespace `netns` and routes everything via `gateway`.
pub(crate) fn configure(
    netns: &File,
    addr: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> io::Result<()> {
    let ns = netns.try_clone()?;
    on_thread(move || {
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)?;
        let mut sock = Socket::route()?;
        let index = link::index_of(PEER)?;
        link::set_up(&mut sock, index)?;
        link::add_address(&mut sock, index, addr, prefix)?;
        link::add_default_route(&mut sock, index, gateway)
    })
}

/// Writes `/etc/resolv.conf` in the mount namespace of process `pid`, owned by host uid
/// `owner` (the sandbox's root). Paths resolve against the sandbox's root, and a symlink at
/// the final component is replaced, never followed. A root without `/etc` is left alone.
pub(crate) fn write_resolv_conf(pid: i32, owner: u32, nameserver: Ipv4Addr) -> io::Result<()> {
    let ns = File::open(format!("/proc/{pid}/ns/mnt"))?;
    let text = format!("nameserver {nameserver}\noptions ndots:0\n");
    on_thread(move || {
        // A thread sharing its filesystem context may not change mount namespace.
        unshare(CloneFlags::CLONE_FS)?;
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNS)?;
        match std::fs::symlink_metadata("/etc") {
            Ok(m) if m.is_dir() => {}
            _ => return Ok(()),
        }
        let path = "/etc/resolv.conf";
        let flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_TRUNC
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC;
        let mode = Mode::from_bits_truncate(0o644);
        let fd = match open(path, flags, mode) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ELOOP) => {
                std::fs::remove_file(path)?;
                open(path, flags, mode)?
            }
            Err(e) => return Err(e.into()),
        };
        // SAFETY: `open` returned a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut file = File::from(fd);
        file.write_all(text.as_bytes())?;
        std::os::unix::fs::fchown(&file, Some(owner), Some(owner))?;
        Ok(())
    })
}
