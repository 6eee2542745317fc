//! A running sandbox, seen from the host.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::{Deserialize, Serialize};

use crate::cgroup::{CgroupError, CgroupStats, SandboxCgroup};
use crate::error::{ExecError, RuntimeError};
use crate::process::Process;
use crate::runtime::Runtime;
use crate::spec::ExecSpec;
use crate::sys;
use crate::uids::UidSlot;

/// What the host must remember about a sandbox; kept in `<dir>/state.json` so a restarted
/// server can find it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxState {
    /// Sandbox id.
    pub id: String,
    /// `<state>/sandboxes/<id>`.
    pub dir: PathBuf,
    /// Control socket of the init.
    pub socket: PathBuf,
    /// Host pid of the init.
    pub init_pid: i32,
    /// Claimed uid slot.
    pub uid_slot: u32,
    /// Host uid of root inside.
    pub root_host_id: u32,
    /// cgroup directories.
    #[serde(skip)]
    pub cgroup: SandboxCgroup,
}

/// A running sandbox. Dropping the handle leaves the sandbox running; call
/// [`Sandbox::destroy`] to end it.
#[derive(Debug)]
pub struct Sandbox {
    state: SandboxState,
    slot: UidSlot,
    pidfd: OwnedFd,
}

impl Sandbox {
    pub(crate) fn started(state: SandboxState, slot: UidSlot) -> Result<Self, RuntimeError> {
        let pidfd =
            sys::proc::pidfd_open(state.init_pid).map_err(|source| RuntimeError::StateDir {
                path: "pidfd".into(),
                source,
            })?;
        if let Ok(json) = serde_json::to_vec_pretty(&state) {
            let _ = std::fs::write(state.dir.join("state.json"), json);
        }
        Ok(Self { state, slot, pidfd })
    }

    /// Finds a sandbox started earlier (by this or a previous process) from its state file.
    /// Returns `None` when it is no longer running.
    pub fn adopt(runtime: &Runtime, id: &str) -> Option<Self> {
        let dir = runtime.sandbox_dir(id);
        let text = std::fs::read(dir.join("state.json")).ok()?;
        let mut state: SandboxState = serde_json::from_slice(&text).ok()?;
        state.cgroup = SandboxCgroup::paths(runtime.layout(), &runtime.config().cgroup_parent, id);
        // The pid must still be the init of this sandbox (pids are reused).
        if !state.cgroup.procs().contains(&state.init_pid) {
            return None;
        }
        let pidfd = sys::proc::pidfd_open(state.init_pid).ok()?;
        let slot = UidSlot::existing(
            &runtime.config().uid_claims_dir,
            runtime.config().uid_base,
            state.uid_slot,
        );
        Some(Self { state, slot, pidfd })
    }

    /// Sandbox id (also its hostname).
    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// The host directory the runtime keeps for this sandbox (outside its root, not
    /// reachable from inside). Callers may keep per-sandbox files here, such as logs; it is
    /// removed with everything in it by [`Sandbox::destroy`].
    pub fn state_dir(&self) -> &Path {
        &self.state.dir
    }

    /// Host pid of the sandbox init.
    pub fn init_pid(&self) -> i32 {
        self.state.init_pid
    }

    /// Host uid (and gid) that root inside the sandbox maps to.
    pub fn root_host_id(&self) -> u32 {
        self.state.root_host_id
    }

    /// The sandbox's root directory as the host can reach it (`/proc/<init>/root`).
    pub fn root_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.state.init_pid))
    }

    /// True while the init runs.
    pub fn is_running(&self) -> bool {
        let mut fds = [PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(0))
    }

    /// The writable layer's upper directory, reachable from the host while the sandbox
    /// runs (for a filesystem snapshot): `/proc/self/fd/<n>/upper` of the returned
    /// descriptor, which keeps it reachable while held. Freeze the sandbox while reading
    /// it. Blocking (one round trip to the init).
    pub fn writable_layer(&self) -> Result<OwnedFd, ExecError> {
        crate::process::writable_layer(&self.state.socket)
    }

    /// Starts a process. Blocking (one round trip to the init).
    pub fn exec(&self, spec: ExecSpec) -> Result<Process, ExecError> {
        Process::start(&self.state.socket, spec)
    }

    /// Opens a TCP connection to `port` on the sandbox's loopback interface, for the edge
    /// proxy: the sandbox has no network route to the host, so the host enters the sandbox's
    /// network namespace for the connect (on a helper thread; see `sys::netns`).
    pub fn connect_tcp(
        &self,
        port: u16,
        timeout: Duration,
    ) -> std::io::Result<std::net::TcpStream> {
        sys::netns::connect_tcp_in(
            self.pidfd.try_clone()?,
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            timeout,
        )
    }

    /// Mounts the host path `source` at `target` inside the running sandbox (e.g. a storage
    /// mount whose sub-path depends on the sandbox id, which a pooled sandbox cannot know in
    /// advance). Blocking; a few system calls.
    pub fn attach(
        &self,
        source: &std::path::Path,
        target: &std::path::Path,
        read_only: bool,
    ) -> std::io::Result<()> {
        self.attach_with(source, target, read_only, false)
    }

    /// [`Sandbox::attach`] with the sandbox's own ids ([`crate::BindMount::idmap`]): for
    /// storage shared between sandboxes, where every sandbox's `user` must be one owner.
    pub fn attach_idmapped(
        &self,
        source: &std::path::Path,
        target: &std::path::Path,
        read_only: bool,
    ) -> std::io::Result<()> {
        self.attach_with(source, target, read_only, true)
    }

    fn attach_with(
        &self,
        source: &std::path::Path,
        target: &std::path::Path,
        read_only: bool,
        idmap: bool,
    ) -> std::io::Result<()> {
        sys::idmap::attach_into(
            self.state.init_pid,
            source,
            target,
            read_only,
            self.state.root_host_id,
            idmap,
        )
    }

    /// Resource usage from the sandbox's cgroup.
    pub fn stats(&self) -> CgroupStats {
        self.state.cgroup.stats()
    }

    /// Bytes used and total of the writable layer, as `(used, total)`: the statfs of the
    /// sandbox's root seen through its init (`/proc/<pid>/root`), which overlayfs answers
    /// for its upper layer (the tmpfs sized by the disk limit, or the host directory).
    /// `None` once the init is gone.
    pub fn writable_layer_usage(&self) -> Option<(u64, u64)> {
        let root = format!("/proc/{}/root/", self.state.init_pid);
        let st = nix::sys::statvfs::statvfs(root.as_str()).ok()?;
        let frag = st.fragment_size().max(1);
        let total = st.blocks().saturating_mul(frag);
        let free = st.blocks_free().saturating_mul(frag);
        Some((total.saturating_sub(free), total))
    }

    /// Freezes every process of the sandbox (pause) or thaws them (resume).
    pub fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        self.state.cgroup.set_frozen(frozen)
    }

    /// Ends every process of the sandbox but its init (a filesystem-only pause): the sandbox
    /// keeps its namespaces, mounts, writable layer and network and runs nothing until a
    /// process is started in it again. Each round freezes the sandbox, lists its processes
    /// (frozen, none can exit and free its pid for reuse before it is signalled), kills all
    /// but the init, and thaws; rounds repeat until nothing else is left, so a process that
    /// forked during a round is caught by the next. Blocking.
    ///
    /// # Errors
    /// [`CgroupError::Busy`] when processes are still there after 5 s.
    pub fn end_processes(&self) -> Result<(), CgroupError> {
        let init = self.state.init_pid;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let frozen = self.state.cgroup.set_frozen(true).is_ok();
            let others: Vec<i32> = self
                .state
                .cgroup
                .procs()
                .into_iter()
                .filter(|p| *p != init)
                .collect();
            for pid in &others {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if frozen {
                self.state.cgroup.set_frozen(false)?;
            }
            if others.is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(CgroupError::Busy(self.state.dir.clone()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills every process in the sandbox at once. The sandbox stays registered until
    /// [`Sandbox::destroy`].
    pub fn kill(&self) {
        // Thaw first: a frozen cgroup does not die on SIGKILL in cgroup v1.
        let _ = self.state.cgroup.set_frozen(false);
        self.state.cgroup.kill();
        let _ = sys::proc::pidfd_send_signal(&self.pidfd, libc::SIGKILL);
    }

    /// Kills the sandbox and removes everything it had on the host: processes, cgroups, its
    /// directory and uid range. Mounts need no unmount: they lived only in the sandbox's mount
    /// namespace, which dies with its last process. Blocking; idempotent (a second call
    /// finds nothing left to remove).
    pub fn destroy(&self) -> Result<(), RuntimeError> {
        self.kill();
        // Reap the init when it is our child (it is when this process is the subreaper that
        // created it); otherwise wait for the pidfd to report its exit.
        let pid = nix::unistd::Pid::from_raw(self.state.init_pid);
        if nix::sys::wait::waitpid(pid, None).is_err() {
            let mut fds = [PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(5000u16));
        }
        let result = self.state.cgroup.remove(Duration::from_secs(5));
        self.slot.release();
        let _ = std::fs::remove_dir_all(&self.state.dir);
        result.map_err(RuntimeError::from)
    }
}
