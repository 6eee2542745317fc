//! Reaching into a sandbox's network namespace from the host.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::sched::{CloneFlags, setns};

/// Connects to `addr` from inside the network namespace of the process `pidfd` refers to
/// (a pidfd, not a pid number: a pid reused after the sandbox died names another process,
/// while `setns` on the pidfd of a dead one fails).
///
/// `setns` changes only the calling thread, so the connect runs on a short-lived thread of
/// its own; the socket keeps belonging to the sandbox's namespace afterwards, while the
/// caller's threads never leave the host's.
pub fn connect_tcp_in(
    pidfd: OwnedFd,
    addr: SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let ns = pidfd;
    std::thread::Builder::new()
        .name("bulkhead-netns".into())
        .spawn(move || -> io::Result<TcpStream> {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)?;
            let stream = TcpStream::connect_timeout(&addr, timeout)?;
            stream.set_nodelay(true)?;
            Ok(stream)
        })?
        .join()
        .map_err(|_| io::Error::other("netns connect thread panicked"))?
}
