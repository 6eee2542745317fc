//! What a child does to itself between fork and exec: the same steps whether this crate forks
//! ([`crate::spawn`]) or std does ([`ChildSetup::install`]).

use std::io;
use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::unistd::{Gid, Uid};

use crate::sys;
use crate::users::User;

/// The ids a child switches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id (real, effective and saved).
    pub uid: u32,
    /// Primary group id (real, effective and saved).
    pub gid: u32,
    /// Supplementary groups, exactly these.
    pub groups: Vec<u32>,
}

impl From<&User> for Identity {
    fn from(user: &User) -> Self {
        Self {
            uid: user.uid,
            gid: user.gid,
            groups: user.groups.clone(),
        }
    }
}

/// Steps the starter adds to a child it forks itself ([`crate::spawn`]), for policy this
/// crate does not own (capabilities, no_new_privs, seccomp).
///
/// Both run between fork and exec. When the forking process may be multi-threaded they must
/// only make async-signal-safe calls on memory prepared before the fork; a single-threaded
/// starter (the sandbox init) may do more. An error fails the start with
/// [`crate::Stage::Setup`] and the returned errno.
pub trait Confine {
    /// Runs before the identity switch, still with the starter's privileges (dropping
    /// capabilities from the bounding set needs CAP_SETPCAP, which a non-root uid loses).
    fn before_identity(&self) -> Result<(), Errno> {
        Ok(())
    }

    /// Runs last, after the identity switch and the change of directory, right before exec.
    fn before_exec(&self) -> Result<(), Errno> {
        Ok(())
    }
}

/// No extra steps.
impl Confine for () {}

/// The child-side setup of one process, prepared (allocated) before the fork.
///
/// Applied in the child, in this order:
/// 1. every signal disposition to its default (ignored signals would otherwise stay ignored
///    across exec) and an empty signal mask;
/// 2. a new session, so the process leads its own process group and signals can target all
///    of its children;
/// 3. (when this crate forks) the stdio descriptors onto 0, 1 and 2;
/// 4. with [`ChildSetup::controlling_tty`], fd 0 as the controlling terminal;
/// 5. every descriptor from 3 upwards close-on-exec: after exec only stdio is open;
/// 6. [`Confine::before_identity`] (when this crate forks);
/// 7. the identity, when one is set: supplementary groups, then gid, then uid (the order that
///    keeps the right to each step).
#[derive(Debug, Clone, Default)]
pub struct ChildSetup {
    identity: Option<(Uid, Gid, Vec<Gid>)>,
    controlling_tty: bool,
}

impl ChildSetup {
    /// Setup that keeps the starter's identity and gives no controlling terminal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Switches the child to `identity` (the starter needs CAP_SETUID and CAP_SETGID, or to
    /// already be that user).
    pub fn identity(mut self, identity: &Identity) -> Self {
        self.identity = Some((
            Uid::from_raw(identity.uid),
            Gid::from_raw(identity.gid),
            identity.groups.iter().map(|g| Gid::from_raw(*g)).collect(),
        ));
        self
    }

    /// Makes the child's stdin (which must then be a terminal: a PTY slave) its controlling
    /// terminal.
    pub fn controlling_tty(mut self, yes: bool) -> Self {
        self.controlling_tty = yes;
        self
    }

    /// Whether the child takes stdin as its controlling terminal.
    pub fn has_controlling_tty(&self) -> bool {
        self.controlling_tty
    }

    /// Steps 1 to 7 (see the type's doc), in the child. Async-signal-safe: system calls on
    /// `self`'s prepared data only.
    pub(crate) fn apply(
        &self,
        stdio: Option<[RawFd; 3]>,
        confine: &dyn Confine,
    ) -> Result<(), Errno> {
        sys::reset_signal_dispositions()?;
        sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
        nix::unistd::setsid()?;
        if let Some(mut fds) = stdio {
            // A source that sits on another stream's number would be overwritten by that
            // stream's dup2: move it out of the way first.
            for (target, fd) in fds.iter_mut().enumerate() {
                if *fd < 3 && *fd != target as RawFd {
                    *fd = nix::fcntl::fcntl(*fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))?;
                }
            }
            for (target, fd) in fds.into_iter().enumerate() {
                let target = target as RawFd;
                if fd == target {
                    sys::clear_cloexec(fd)?;
                } else {
                    nix::unistd::dup2(fd, target)?;
                }
            }
        }
        if self.controlling_tty {
            sys::set_controlling_tty_on_stdin()?;
        }
        sys::cloexec_from_3()?;
        confine.before_identity()?;
        if let Some((uid, gid, groups)) = &self.identity {
            nix::unistd::setgroups(groups)?;
            nix::unistd::setresgid(*gid, *gid, *gid)?;
            nix::unistd::setresuid(*uid, *uid, *uid)?;
        }
        Ok(())
    }

    /// Runs this setup in every child `cmd` spawns. std has wired stdio and changed to
    /// `cmd`'s working directory (with the starter's rights) before these steps run; a
    /// failure makes `spawn` return the step's errno as an `io::Error`.
    pub fn install(self, cmd: &mut std::process::Command) {
        sys::pre_exec(cmd, move || {
            self.apply(None, &())
                .map_err(|e| io::Error::from_raw_os_error(e as i32))
        });
    }
}
