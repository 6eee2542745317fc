//! Starting one process inside the sandbox: user, environment, stdio, privileges, exec.
//!
//! Runs in the init, which is single-threaded, so the forked child may allocate before exec.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::fcntl::OFlag;
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::unistd::{Gid, Uid, dup2, pipe2, setsid};

use super::users::{self, User};
use crate::protocol::ExecFailure;
use crate::seccomp::SandboxFilters;
use crate::spec::{ExecSpec, Stdio};
use crate::sys;
use crate::sys::fork::ForkResult;

/// Default `PATH` inside sandboxes.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A started process and the descriptors for the host.
pub(crate) struct Spawned {
    pub pid: i32,
    pub fds: Vec<OwnedFd>,
}

type Failure = (ExecFailure, String);

/// Stages a child reports through the error pipe.
const STAGE_SETUP: u8 = 1;
const STAGE_CWD: u8 = 2;
const STAGE_EXEC: u8 = 3;

fn cstring(what: &str, s: &str) -> Result<CString, Failure> {
    CString::new(s).map_err(|_| (ExecFailure::Invalid, format!("{what} contains a NUL byte")))
}

fn other<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> Failure {
    move |e| (ExecFailure::Other, format!("{what}: {e}"))
}

/// Builds the final environment: defaults first, then the caller's values.
fn environment(spec: &ExecSpec, user: &User) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOME".into(), user.home.clone()),
        ("USER".into(), user.name.clone()),
        ("LOGNAME".into(), user.name.clone()),
        ("LANG".into(), "C.UTF-8".into()),
    ];
    if matches!(spec.stdio, Stdio::Pty { .. }) {
        env.push(("TERM".into(), "xterm-256color".into()));
    }
    for (k, v) in &spec.env {
        match env.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1 = v.clone(),
            None => env.push((k.clone(), v.clone())),
        }
    }
    env
}

/// Starts `spec`. On success the returned descriptors are, for pipes, stdout, stderr and
/// (when asked) stdin; for a PTY, the master.
pub(crate) fn spawn(spec: &ExecSpec, filters: &SandboxFilters) -> Result<Spawned, Failure> {
    let program = spec
        .argv
        .first()
        .filter(|p| !p.is_empty())
        .ok_or((ExecFailure::Invalid, "empty command".to_string()))?;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let user = users::resolve(spec.user.as_deref(), &passwd, &group)
        .map_err(|e| (ExecFailure::UnknownUser, e))?;
    let env = environment(spec, &user);
    let cwd = match &spec.cwd {
        Some(c) => c.clone(),
        None if std::path::Path::new(&user.home).is_dir() => user.home.clone(),
        None => "/".to_string(),
    };
    let argv = spec
        .argv
        .iter()
        .map(|a| cstring("an argument", a))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = env
        .iter()
        .map(|(k, v)| cstring("an environment variable", &format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()?;
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or(DEFAULT_PATH);
    let candidates = if program.contains('/') {
        vec![cstring("the command", program)?]
    } else {
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| cstring("PATH", &format!("{d}/{program}")))
            .collect::<Result<Vec<_>, _>>()?
    };
    let cwd_c = cstring("the working directory", &cwd)?;

    // Child ends (dup'd onto 0, 1, 2) and host ends.
    let mut host_fds: Vec<OwnedFd> = Vec::new();
    let child_fds: [OwnedFd; 3];
    let mut pty_rows_cols = None;
    match spec.stdio {
        Stdio::Pipes { stdin } => {
            let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(other("pipe"))?;
            let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(other("pipe"))?;
            let child_in: OwnedFd = if stdin {
                let (in_r, in_w) = pipe2(OFlag::O_CLOEXEC).map_err(other("pipe"))?;
                host_fds.extend([out_r, err_r, in_w]);
                in_r
            } else {
                host_fds.extend([out_r, err_r]);
                std::fs::File::open("/dev/null")
                    .map_err(other("opening /dev/null"))?
                    .into()
            };
            child_fds = [child_in, out_w, err_w];
        }
        Stdio::Pty { rows, cols } => {
            let pty = nix::pty::openpty(None, None).map_err(other("openpty"))?;
            sys::proc::set_winsize(pty.master.as_raw_fd(), rows, cols)
                .map_err(other("setting the terminal size"))?;
            nix::fcntl::fcntl(
                pty.master.as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .map_err(other("fcntl"))?;
            let s1 = pty.slave.try_clone().map_err(other("dup"))?;
            let s2 = pty.slave.try_clone().map_err(other("dup"))?;
            host_fds.push(pty.master);
            child_fds = [pty.slave, s1, s2];
            pty_rows_cols = Some((rows, cols));
        }
    }
    let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(other("pipe"))?;

    // The init is single-threaded, so the child can run ordinary Rust code.
    match sys::fork::fork().map_err(other("fork"))? {
        ForkResult::Child => {
            drop(err_r);
            let (stage, errno) = child(
                &user,
                &child_fds,
                pty_rows_cols.is_some(),
                &cwd_c,
                &argv,
                &envp,
                &candidates,
                filters,
            );
            let mut msg = [0u8; 5];
            msg[0] = stage;
            msg[1..].copy_from_slice(&errno.to_le_bytes());
            let _ = nix::unistd::write(&err_w, &msg);
            // _exit skips the parent's atexit handlers and buffers, as a failed exec must.
            sys::fork::exit_now(127)
        }
        ForkResult::Parent { child } => {
            drop(child_fds);
            drop(err_w);
            let mut report = Vec::new();
            let _ = std::fs::File::from(err_r).read_to_end(&mut report);
            if report.len() < 5 {
                return Ok(Spawned {
                    pid: child.as_raw(),
                    fds: host_fds,
                });
            }
            let _ = nix::sys::wait::waitpid(child, None);
            let errno = i32::from_le_bytes([report[1], report[2], report[3], report[4]]);
            let err = std::io::Error::from_raw_os_error(errno);
            Err(match report[0] {
                STAGE_CWD => (
                    ExecFailure::BadCwd,
                    format!("working directory {cwd:?}: {err}"),
                ),
                STAGE_EXEC if errno == libc::ENOENT || errno == libc::ENOTDIR => (
                    ExecFailure::NotFound,
                    format!("{program}: command not found"),
                ),
                STAGE_EXEC if errno == libc::EACCES || errno == libc::ENOEXEC => {
                    (ExecFailure::NotExecutable, format!("{program}: {err}"))
                }
                STAGE_EXEC => (ExecFailure::Other, format!("{program}: {err}")),
                _ => (ExecFailure::Other, format!("process setup failed: {err}")),
            })
        }
    }
}

/// The forked child: returns only on failure, with the stage and errno.
#[allow(clippy::too_many_arguments)]
fn child(
    user: &User,
    stdio: &[OwnedFd; 3],
    pty: bool,
    cwd: &CString,
    argv: &[CString],
    envp: &[CString],
    candidates: &[CString],
    filters: &SandboxFilters,
) -> (u8, i32) {
    let errno = |e: nix::Error| (STAGE_SETUP, e as i32);
    let io = |e: std::io::Error| (STAGE_SETUP, e.raw_os_error().unwrap_or(libc::EIO));
    let setup = || -> Result<(), (u8, i32)> {
        // The init blocks SIGCHLD for its signalfd and Rust ignores SIGPIPE; neither must leak
        // into user programs.
        sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None).map_err(errno)?;
        sys::fork::default_sigpipe().map_err(errno)?;
        setsid().map_err(errno)?;
        for (i, fd) in stdio.iter().enumerate() {
            dup2(fd.as_raw_fd(), i as RawFd).map_err(errno)?;
        }
        if pty {
            sys::proc::set_controlling_tty(0).map_err(io)?;
        }
        sys::proc::cloexec_from_3();
        sys::caps::drop_bounding().map_err(|_| (STAGE_SETUP, libc::EPERM))?;
        let groups: Vec<Gid> = user.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        nix::unistd::setgroups(&groups).map_err(errno)?;
        let gid = Gid::from_raw(user.gid);
        nix::unistd::setresgid(gid, gid, gid).map_err(errno)?;
        let uid = Uid::from_raw(user.uid);
        nix::unistd::setresuid(uid, uid, uid).map_err(errno)?;
        if user.uid == 0 {
            sys::caps::restrict_sets().map_err(|_| (STAGE_SETUP, libc::EPERM))?;
        }
        nix::unistd::chdir(cwd.as_c_str()).map_err(|e| (STAGE_CWD, e as i32))?;
        sys::proc::set_no_new_privs().map_err(io)?;
        filters.apply().map_err(|_| (STAGE_SETUP, libc::EPERM))?;
        Ok(())
    };
    if let Err(e) = setup() {
        return e;
    }
    let mut last = libc::ENOENT;
    for candidate in candidates {
        let Err(e) = nix::unistd::execve(candidate, argv, envp);
        match e as i32 {
            libc::ENOENT | libc::ENOTDIR => {}
            code => last = code,
        }
    }
    (STAGE_EXEC, last)
}
