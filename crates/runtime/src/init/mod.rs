//! The sandbox init: PID 1 of every sandbox.
//!
//! A single-threaded poll loop over the control socket (host connections only: the socket
//! file lives outside the sandbox, and the init is non-dumpable), one connection per process,
//! and a signalfd for SIGCHLD. It reaps every child (orphans included), starts processes on
//! request, signals them, and reports their exit. It never copies process output: stdio
//! descriptors go to the host with `SCM_RIGHTS`.

mod spawn;

pub use spawn::DEFAULT_PATH;

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::protocol::{MAX_MESSAGE, Reply, Request};
use crate::seccomp::{self, SandboxFilters};
use crate::sys;

struct Conn {
    fd: OwnedFd,
    pid: Option<i32>,
    detach: bool,
    exited: bool,
}

/// The init's state.
pub(crate) struct Init {
    listener: OwnedFd,
    /// The writable layer's directory (`O_PATH`), handed to the host on request.
    writable: Option<OwnedFd>,
    sigfd: SignalFd,
    filters: SandboxFilters,
    /// [`crate::Limits::allow_setuid`] of the sandbox.
    allow_setuid: bool,
    conns: HashMap<RawFd, Conn>,
    /// One receive buffer for every request (a fresh 1 MiB allocation per message would be
    /// mapped and unmapped on every exec).
    buf: Vec<u8>,
}

/// Setting up the init failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InitError {
    #[error("signal setup")]
    Signals(#[source] Errno),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
}

impl Init {
    /// Prepares the loop; the caller must already be PID 1 of the sandbox.
    pub(crate) fn new(
        listener: OwnedFd,
        writable: Option<OwnedFd>,
        allow_setuid: bool,
    ) -> Result<Self, InitError> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None).map_err(InitError::Signals)?;
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(InitError::Signals)?;
        let filters = seccomp::compile()?;
        Ok(Self {
            listener,
            writable,
            sigfd,
            filters,
            allow_setuid,
            conns: HashMap::new(),
            buf: vec![0u8; MAX_MESSAGE],
        })
    }

    /// Serves until the sandbox is killed.
    pub(crate) fn run(mut self) -> Result<std::convert::Infallible, String> {
        // Nothing of the launcher's may stay open in PID 1 (pipes to L, for one).
        let mut keep = vec![self.listener.as_raw_fd(), self.sigfd.as_fd().as_raw_fd()];
        keep.extend(self.writable.as_ref().map(|f| f.as_raw_fd()));
        close_all_but(&keep);
        loop {
            let mut fds = vec![
                PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.sigfd.as_fd(), PollFlags::POLLIN),
            ];
            let order: Vec<RawFd> = self.conns.keys().copied().collect();
            for raw in &order {
                if let Some(c) = self.conns.get(raw) {
                    fds.push(PollFd::new(c.fd.as_fd(), PollFlags::POLLIN));
                }
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(format!("poll: {e}")),
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            if ready[0] {
                self.accept();
            }
            if ready[1] {
                self.reap();
            }
            for (i, raw) in order.iter().enumerate() {
                if ready[i + 2] {
                    self.serve(*raw);
                }
            }
        }
    }

    fn accept(&mut self) {
        if let Ok(fd) = sys::fdpass::accept(&self.listener) {
            self.conns.insert(
                fd.as_raw_fd(),
                Conn {
                    fd,
                    pid: None,
                    detach: false,
                    exited: false,
                },
            );
        }
    }

    fn reap(&mut self) {
        while self.sigfd.read_signal().ok().flatten().is_some() {}
        loop {
            let (pid, code, signal) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, Some(code), None),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, None, Some(sig as i32)),
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            if let Some(conn) = self
                .conns
                .values_mut()
                .find(|c| c.pid == Some(pid.as_raw()) && !c.exited)
            {
                conn.exited = true;
                send(&conn.fd, &Reply::Exited { code, signal }, &[]);
            }
        }
    }

    fn serve(&mut self, raw: RawFd) {
        let Some(conn) = self.conns.get_mut(&raw) else {
            return;
        };
        let buf = &mut self.buf;
        let n = match nix::sys::socket::recv(raw, buf, nix::sys::socket::MsgFlags::MSG_DONTWAIT) {
            Ok(n) => n,
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => return,
            Err(_) => 0,
        };
        if n == 0 {
            // The host hung up: its process goes too, unless it asked to be detached.
            if let (Some(pid), false, false) = (conn.pid, conn.detach, conn.exited) {
                let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            self.conns.remove(&raw);
            return;
        }
        let reply = match serde_json::from_slice::<Request>(&buf[..n]) {
            Err(e) => Reply::Error {
                message: format!("malformed request: {e}"),
            },
            Ok(Request::Ping) => Reply::Pong,
            Ok(Request::WritableLayer) => match &self.writable {
                Some(fd) => {
                    send(&conn.fd, &Reply::WritableLayer, &[fd.as_raw_fd()]);
                    return;
                }
                None => Reply::Error {
                    message: "the writable layer was not kept".into(),
                },
            },
            Ok(Request::Signal { signal, group }) => match (conn.pid, Signal::try_from(signal)) {
                (Some(pid), Ok(sig)) if !conn.exited => {
                    let target = if group { -pid } else { pid };
                    match kill(Pid::from_raw(target), sig) {
                        Ok(()) => return,
                        Err(e) => Reply::Error {
                            message: format!("signal: {e}"),
                        },
                    }
                }
                (_, Err(_)) => Reply::Error {
                    message: format!("invalid signal {signal}"),
                },
                _ => Reply::Error {
                    message: "no running process on this connection".into(),
                },
            },
            Ok(Request::Exec(spec)) if conn.pid.is_none() => {
                match spawn::spawn(&spec, &self.filters, self.allow_setuid) {
                    Ok(spawned) => {
                        conn.pid = Some(spawned.pid);
                        conn.detach = spec.detach;
                        let raws: Vec<RawFd> = spawned.fds.iter().map(|f| f.as_raw_fd()).collect();
                        send(&conn.fd, &Reply::Started { pid: spawned.pid }, &raws);
                        return;
                    }
                    Err((kind, message)) => Reply::ExecFailed { kind, message },
                }
            }
            Ok(Request::Exec(_)) => Reply::Error {
                message: "this connection already has a process".into(),
            },
        };
        send(&conn.fd, &reply, &[]);
    }
}

fn send(fd: &OwnedFd, reply: &Reply, fds: &[RawFd]) {
    if let Ok(bytes) = serde_json::to_vec(reply) {
        let _ = sys::fdpass::send_with_fds(fd.as_raw_fd(), &bytes, fds);
    }
}

fn close_all_but(keep: &[RawFd]) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: closing a descriptor nothing in the init uses any more (the listener and
            // the signalfd are kept); read_dir's own descriptor is already closed here.
            let _ = nix::unistd::close(fd);
        }
    }
}
