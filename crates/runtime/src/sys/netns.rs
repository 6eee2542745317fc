//! Reaching into a sandbox's network namespace from the host.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};

/// Connects to `addr` from inside the network namespace at `ns_path` (`/proc/<pid>/ns/net`).
///
/// `setns` changes only the calling thread, so the connect runs on a short-lived thread of
/// its own; the socket keeps belonging to the sandbox's namespace afterwards, while the
/// caller's threads never leave the host's.
pub fn connect_tcp_in(
    ns_path: &Path,
    addr: SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let ns = File::open(ns_path)?;
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
