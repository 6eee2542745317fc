//! A process start where this crate forks: the command prepared before the fork, the child's
//! steps, and a report pipe that tells which step failed.

use std::ffi::{CString, c_char};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd::Pid;

use crate::env::DEFAULT_PATH;
use crate::setup::{ChildSetup, Confine};
use crate::sys;

/// A command whose every string is allocated, ready to be started by [`spawn`].
#[derive(Debug, Clone)]
pub struct Command {
    program: String,
    argv: Vec<CString>,
    envp: Vec<CString>,
    candidates: Vec<CString>,
    cwd: CString,
}

/// A command that cannot be started as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No program, or an empty one.
    #[error("empty command")]
    Empty,
    /// A string holds a NUL byte, which exec cannot pass.
    #[error("{0} contains a NUL byte")]
    Nul(&'static str),
}

fn cstring(what: &'static str, s: &str) -> Result<CString, CommandError> {
    CString::new(s).map_err(|_| CommandError::Nul(what))
}

impl Command {
    /// Prepares `argv` with exactly the environment `env` (nothing is inherited) to run in
    /// `cwd`. `argv[0]` without a `/` is looked up in `env`'s `PATH` ([`DEFAULT_PATH`] when
    /// there is none) at exec time, first match that exists wins.
    pub fn new<K, V>(
        argv: &[String],
        env: impl IntoIterator<Item = (K, V)>,
        cwd: &str,
    ) -> Result<Self, CommandError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let program = argv
            .first()
            .filter(|p| !p.is_empty())
            .ok_or(CommandError::Empty)?;
        let mut path = None;
        let mut envp = Vec::new();
        for (k, v) in env {
            let (k, v) = (k.as_ref(), v.as_ref());
            if k == "PATH" {
                path = Some(v.to_owned());
            }
            envp.push(cstring("an environment variable", &format!("{k}={v}"))?);
        }
        let candidates = if program.contains('/') {
            vec![cstring("the command", program)?]
        } else {
            path.as_deref()
                .unwrap_or(DEFAULT_PATH)
                .split(':')
                .filter(|d| !d.is_empty())
                .map(|d| cstring("PATH", &format!("{d}/{program}")))
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(Self {
            program: program.clone(),
            argv: argv
                .iter()
                .map(|a| cstring("an argument", a))
                .collect::<Result<_, _>>()?,
            envp,
            candidates,
            cwd: cstring("the working directory", cwd)?,
        })
    }

    /// `argv[0]` as given.
    pub fn program(&self) -> &str {
        &self.program
    }
}

/// The child step that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Signals, session, stdio, terminal, descriptors, identity or a [`Confine`] step.
    Setup,
    /// Changing to the working directory (as the target user).
    Cwd,
    /// exec: no candidate could be executed; the errno is the most telling one (`ENOENT`
    /// only when no candidate exists).
    Exec,
}

impl Stage {
    fn code(self) -> u8 {
        match self {
            Stage::Setup => 1,
            Stage::Cwd => 2,
            Stage::Exec => 3,
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            2 => Stage::Cwd,
            3 => Stage::Exec,
            _ => Stage::Setup,
        }
    }
}

/// A process that did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpawnError {
    /// The pipe for the child's report could not be made.
    #[error("creating the child's report pipe")]
    Pipe(#[source] Errno),
    /// fork failed (out of processes or memory).
    #[error("fork")]
    Fork(#[source] Errno),
    /// The child ran but failed at `stage` with `errno`; it has been reaped.
    #[error("child failed at {stage:?}")]
    Child {
        /// The failed step.
        stage: Stage,
        /// Its errno.
        errno: Errno,
    },
}

/// Starts `cmd` with `stdio` as its fds 0, 1 and 2, set up by `setup` and `confine`.
///
/// In the child, after `setup`'s steps (see [`ChildSetup`]): change to the working directory
/// (after the identity switch, so a directory the user may not enter fails with
/// [`Stage::Cwd`]), [`Confine::before_exec`], exec. Returns once exec succeeded or the child
/// reported a failure. The caller keeps (and should then close) its copies of `stdio`.
///
/// Fork safety: everything the child uses is allocated here, before the fork, and the child
/// only makes async-signal-safe calls, so the caller may be multi-threaded (as long as its
/// [`Confine`] steps obey the same rule).
pub fn spawn(
    cmd: &Command,
    stdio: [BorrowedFd<'_>; 3],
    setup: &ChildSetup,
    confine: &dyn Confine,
) -> Result<Pid, SpawnError> {
    let nul = std::ptr::null::<c_char>();
    let argv: Vec<*const c_char> = cmd.argv.iter().map(|a| a.as_ptr()).chain([nul]).collect();
    let envp: Vec<*const c_char> = cmd.envp.iter().map(|e| e.as_ptr()).chain([nul]).collect();
    let stdio: [RawFd; 3] = stdio.map(|f| f.as_raw_fd());
    let (report_r, report_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(SpawnError::Pipe)?;
    let pid = sys::fork_into(|| {
        let (stage, errno) = child(cmd, &argv, &envp, stdio, setup, confine);
        let e = (errno as i32).to_le_bytes();
        let msg = [stage.code(), e[0], e[1], e[2], e[3]];
        let _ = nix::unistd::write(&report_w, &msg);
    })
    .map_err(SpawnError::Fork)?;
    drop(report_w);
    let mut msg = [0u8; 5];
    let mut got = 0;
    while got < msg.len() {
        match nix::unistd::read(report_r.as_raw_fd(), &mut msg[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    if got < msg.len() {
        // The write end closed on exec without a report: the program runs.
        return Ok(pid);
    }
    let _ = nix::sys::wait::waitpid(pid, None);
    Err(SpawnError::Child {
        stage: Stage::from_code(msg[0]),
        errno: Errno::from_raw(i32::from_le_bytes([msg[1], msg[2], msg[3], msg[4]])),
    })
}

/// The forked child: returns only on failure, with the stage and errno.
fn child(
    cmd: &Command,
    argv: &[*const c_char],
    envp: &[*const c_char],
    stdio: [RawFd; 3],
    setup: &ChildSetup,
    confine: &dyn Confine,
) -> (Stage, Errno) {
    if let Err(e) = setup.apply(Some(stdio), confine) {
        return (Stage::Setup, e);
    }
    if let Err(e) = nix::unistd::chdir(cmd.cwd.as_c_str()) {
        return (Stage::Cwd, e);
    }
    if let Err(e) = confine.before_exec() {
        return (Stage::Setup, e);
    }
    let mut last = Errno::ENOENT;
    for candidate in &cmd.candidates {
        match sys::execve(candidate, argv, envp) {
            Errno::ENOENT | Errno::ENOTDIR => {}
            e => last = e,
        }
    }
    (Stage::Exec, last)
}
