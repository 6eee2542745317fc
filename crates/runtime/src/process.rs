//! A process running in a sandbox, seen from the host.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use bulkhead_spawn::WinSize;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};

use crate::error::ExecError;
use crate::protocol::{MAX_MESSAGE, Reply, Request};
use crate::spec::{ExecSpec, Stdio};
use crate::sys;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code, when the process exited.
    pub code: Option<i32>,
    /// Signal number, when it was killed.
    pub signal: Option<i32>,
}

impl ExitStatus {
    /// The status as a shell reports it: the code, or 128 + signal.
    pub fn shell_code(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => 1,
        }
    }
}

/// A started process. Its stdio descriptors are plain files owned by the host side: read
/// and write them directly (or hand them to an async runtime).
#[derive(Debug)]
pub struct Process {
    /// Pid inside the sandbox.
    pub pid: i32,
    /// Writable stdin, when requested.
    pub stdin: Option<File>,
    /// Readable stdout (pipes mode).
    pub stdout: Option<File>,
    /// Readable stderr (pipes mode).
    pub stderr: Option<File>,
    /// PTY master (PTY mode): read output, write input, resize.
    pub pty: Option<File>,
    conn: OwnedFd,
}

fn io(e: impl Into<std::io::Error>) -> ExecError {
    ExecError::Io(e.into())
}

/// A new connection to the init's control socket at `socket_path` (one per request kind:
/// the init ties a process to its connection).
fn connect_init(socket_path: &Path) -> Result<OwnedFd, ExecError> {
    let conn = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io)?;
    let addr = UnixAddr::new(socket_path).map_err(io)?;
    connect(conn.as_raw_fd(), &addr).map_err(|e| ExecError::NotRunning(e.into()))?;
    Ok(conn)
}

/// Asks the init at `socket_path` for the writable layer's directory (see
/// [`Request::WritableLayer`]).
pub(crate) fn writable_layer(socket_path: &Path) -> Result<OwnedFd, ExecError> {
    let conn = connect_init(socket_path)?;
    send(&conn, &Request::WritableLayer)?;
    match recv(&conn)? {
        (Reply::WritableLayer, mut fds) if fds.len() == 1 => Ok(fds.remove(0)),
        (Reply::Error { message }, _) => Err(ExecError::Protocol(message)),
        (other, _) => Err(ExecError::Protocol(format!("unexpected reply {other:?}"))),
    }
}

impl Process {
    pub(crate) fn start(socket_path: &Path, spec: ExecSpec) -> Result<Self, ExecError> {
        let conn = connect_init(socket_path)?;
        let stdio = spec.stdio;
        send(&conn, &Request::Exec(spec))?;
        let (reply, fds) = recv(&conn)?;
        match reply {
            Reply::Started { pid } => {
                let mut fds = fds.into_iter().map(File::from);
                let mut p = Self {
                    pid,
                    stdin: None,
                    stdout: None,
                    stderr: None,
                    pty: None,
                    conn,
                };
                match stdio {
                    Stdio::Pipes { stdin } => {
                        p.stdout = fds.next();
                        p.stderr = fds.next();
                        if stdin {
                            p.stdin = fds.next();
                        }
                        if p.stderr.is_none() || (stdin && p.stdin.is_none()) {
                            return Err(ExecError::Protocol("missing stdio descriptors".into()));
                        }
                    }
                    Stdio::Pty { .. } => {
                        p.pty = fds.next();
                        if p.pty.is_none() {
                            return Err(ExecError::Protocol("missing PTY descriptor".into()));
                        }
                    }
                }
                Ok(p)
            }
            Reply::ExecFailed { kind, message } => Err(ExecError::Failed { kind, message }),
            other => Err(ExecError::Protocol(format!("unexpected reply {other:?}"))),
        }
    }

    /// Waits for the process to end. Blocking.
    pub fn wait(&self) -> Result<ExitStatus, ExecError> {
        loop {
            match recv(&self.conn)?.0 {
                Reply::Exited { code, signal } => return Ok(ExitStatus { code, signal }),
                Reply::Error { message } => return Err(ExecError::Protocol(message)),
                _ => continue,
            }
        }
    }

    /// Sends a signal to the process, or to its whole process group.
    pub fn signal(&self, signal: i32, group: bool) -> Result<(), ExecError> {
        send(&self.conn, &Request::Signal { signal, group })
    }

    /// Resizes the PTY (no-op without one).
    pub fn resize(&self, size: WinSize) -> Result<(), ExecError> {
        match &self.pty {
            Some(pty) => bulkhead_spawn::pty::set_size(pty.as_fd(), size).map_err(ExecError::Io),
            None => Ok(()),
        }
    }
}

fn send(conn: &OwnedFd, req: &Request) -> Result<(), ExecError> {
    let bytes = serde_json::to_vec(req).map_err(|e| ExecError::Protocol(e.to_string()))?;
    if bytes.len() > MAX_MESSAGE {
        return Err(ExecError::Protocol(format!(
            "request of {} bytes exceeds the {MAX_MESSAGE}-byte limit",
            bytes.len()
        )));
    }
    sys::fdpass::send_with_fds(conn.as_raw_fd(), &bytes, &[]).map_err(ExecError::Io)
}

fn recv(conn: &OwnedFd) -> Result<(Reply, Vec<OwnedFd>), ExecError> {
    let mut buf = vec![0u8; 64 * 1024];
    let (n, fds) = sys::fdpass::recv_with_fds(conn.as_raw_fd(), &mut buf).map_err(ExecError::Io)?;
    if n == 0 {
        return Err(ExecError::NotRunning(std::io::Error::from(
            std::io::ErrorKind::UnexpectedEof,
        )));
    }
    let reply =
        serde_json::from_slice(&buf[..n]).map_err(|e| ExecError::Protocol(e.to_string()))?;
    Ok((reply, fds))
}
