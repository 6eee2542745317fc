//! Starting one process inside the sandbox: the request turned into a `bulkhead_spawn`
//! command (user, environment, working directory, stdio), plus the sandbox's own policy
//! (capabilities, no_new_privs, seccomp) as the starter's [`Confine`] steps.

use std::os::fd::{AsFd, OwnedFd};

use bulkhead_spawn::{
    ChildSetup, Command, CommandError, Confine, Identity, SpawnError, Stage, pty, users,
};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd::pipe2;

use crate::protocol::ExecFailure;
use crate::seccomp::SandboxFilters;
use crate::spec::{ExecSpec, Stdio};
use crate::sys;

pub use bulkhead_spawn::env::DEFAULT_PATH;

/// A started process and the descriptors for the host.
pub(crate) struct Spawned {
    pub pid: i32,
    pub fds: Vec<OwnedFd>,
}

type Failure = (ExecFailure, String);

fn other<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> Failure {
    move |e| (ExecFailure::Other, format!("{what}: {e}"))
}

/// The sandbox's policy for every process: a bounding set cut to the default capabilities
/// while still privileged; then, right before exec, the effective sets of a root process cut
/// the same way, no_new_privs, and the seccomp filter.
///
/// With `allow_setuid` (see [`crate::Limits::allow_setuid`]) there is no no_new_privs, so the
/// filter goes in before the identity switch, while the process still holds
/// `CAP_SYS_ADMIN` in the sandbox's namespace (installing a filter without no_new_privs
/// needs it); every call the switch makes after it is on the allow-list.
///
/// These steps allocate (the caps crate builds sets), which is sound only because the init is
/// single-threaded.
struct SandboxPolicy<'a> {
    filters: &'a SandboxFilters,
    root: bool,
    allow_setuid: bool,
}

impl Confine for SandboxPolicy<'_> {
    fn before_identity(&self) -> Result<(), Errno> {
        sys::caps::drop_bounding().map_err(|_| Errno::EPERM)?;
        if self.allow_setuid {
            self.filters.apply().map_err(|_| Errno::EPERM)?;
        }
        Ok(())
    }

    fn before_exec(&self) -> Result<(), Errno> {
        if self.root {
            sys::caps::restrict_sets().map_err(|_| Errno::EPERM)?;
        }
        if self.allow_setuid {
            return Ok(());
        }
        sys::proc::set_no_new_privs()
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
        self.filters.apply().map_err(|_| Errno::EPERM)
    }
}

/// Starts `spec`. On success the returned descriptors are, for pipes, stdout, stderr and
/// (when asked) stdin; for a PTY, the master.
pub(crate) fn spawn(
    spec: &ExecSpec,
    filters: &SandboxFilters,
    allow_setuid: bool,
) -> Result<Spawned, Failure> {
    if spec.argv.first().is_none_or(|p| p.is_empty()) {
        return Err((ExecFailure::Invalid, CommandError::Empty.to_string()));
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let user = users::resolve(spec.user.as_deref(), &passwd, &group)
        .map_err(|e| (ExecFailure::UnknownUser, e.to_string()))?;
    let pty_size = match spec.stdio {
        Stdio::Pty { size } => Some(size),
        Stdio::Pipes { .. } => None,
    };
    let mut env = bulkhead_spawn::env::baseline(&user, DEFAULT_PATH, pty_size.is_some());
    env.extend(spec.env.iter().cloned());
    let cwd = match &spec.cwd {
        Some(c) => c.clone(),
        None if user.home.is_dir() => user.home.display().to_string(),
        None => "/".to_string(),
    };
    let cmd = Command::new(&spec.argv, &env, &cwd).map_err(|e| match e {
        CommandError::Empty | CommandError::Nul(_) => (ExecFailure::Invalid, e.to_string()),
    })?;

    // Child ends (wired to 0, 1, 2) and host ends.
    let mut host_fds: Vec<OwnedFd> = Vec::new();
    let child_fds: [OwnedFd; 3] = match pty_size {
        None => {
            let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(other("pipe"))?;
            let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(other("pipe"))?;
            let child_in: OwnedFd = if matches!(spec.stdio, Stdio::Pipes { stdin: true }) {
                let (in_r, in_w) = pipe2(OFlag::O_CLOEXEC).map_err(other("pipe"))?;
                host_fds.extend([out_r, err_r, in_w]);
                in_r
            } else {
                host_fds.extend([out_r, err_r]);
                std::fs::File::open("/dev/null")
                    .map_err(other("opening /dev/null"))?
                    .into()
            };
            [child_in, out_w, err_w]
        }
        Some(size) => {
            let pty = pty::open(size).map_err(other("opening a terminal"))?;
            let s1 = pty.slave.try_clone().map_err(other("dup"))?;
            let s2 = pty.slave.try_clone().map_err(other("dup"))?;
            host_fds.push(pty.master);
            [pty.slave, s1, s2]
        }
    };
    let setup = ChildSetup::new()
        .identity(&Identity::from(&user))
        .controlling_tty(pty_size.is_some());
    let policy = SandboxPolicy {
        filters,
        root: user.uid == 0,
        allow_setuid,
    };
    let stdio = [
        child_fds[0].as_fd(),
        child_fds[1].as_fd(),
        child_fds[2].as_fd(),
    ];
    let started = bulkhead_spawn::spawn(&cmd, stdio, &setup, &policy);
    // The host's ends are all that stays open here: the master sees EOF once the child
    // side closes.
    drop(child_fds);
    match started {
        Ok(pid) => Ok(Spawned {
            pid: pid.as_raw(),
            fds: host_fds,
        }),
        Err(e) => Err(failure(e, cmd.program(), &cwd)),
    }
}

fn failure(e: SpawnError, program: &str, cwd: &str) -> Failure {
    let (stage, errno) = match e {
        SpawnError::Child { stage, errno } => (stage, errno),
        SpawnError::Pipe(errno) | SpawnError::Fork(errno) => (Stage::Setup, errno),
    };
    let err = std::io::Error::from_raw_os_error(errno as i32);
    match stage {
        Stage::Cwd => (
            ExecFailure::BadCwd,
            format!("working directory {cwd:?}: {err}"),
        ),
        Stage::Exec if errno == Errno::ENOENT || errno == Errno::ENOTDIR => (
            ExecFailure::NotFound,
            format!("{program}: command not found"),
        ),
        Stage::Exec if errno == Errno::EACCES || errno == Errno::ENOEXEC => {
            (ExecFailure::NotExecutable, format!("{program}: {err}"))
        }
        Stage::Exec => (ExecFailure::Other, format!("{program}: {err}")),
        Stage::Setup => (ExecFailure::Other, format!("process setup failed: {err}")),
    }
}
