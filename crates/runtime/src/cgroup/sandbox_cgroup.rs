//! One sandbox's cgroups: create with limits, join, kill, freeze, account, remove.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{CgroupError, CgroupLayout};
use crate::limits::Limits;

/// CFS period used for CPU quotas (100 ms, the kernel default).
const CPU_PERIOD_US: u64 = 100_000;

/// The cgroup directories of one sandbox, one per hierarchy.
#[derive(Debug, Clone, Default)]
pub struct SandboxCgroup {
    v2: bool,
    memory: PathBuf,
    pids: PathBuf,
    cpu: PathBuf,
    cpuacct: Option<PathBuf>,
    freezer: Option<PathBuf>,
    unified: Option<PathBuf>,
}

/// Resource usage read from cgroup accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupStats {
    /// Memory in use, bytes (includes page cache and tmpfs).
    pub memory_bytes: u64,
    /// Of that, page cache (file pages, tmpfs included), bytes.
    pub memory_cache_bytes: u64,
    /// CPU time used since creation, nanoseconds.
    pub cpu_ns: u64,
    /// Processes and threads currently in the sandbox.
    pub pids: u64,
    /// Times the OOM killer fired inside the sandbox.
    pub oom_kills: u64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(io_err(path))
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn keyed(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn mkdir(path: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

impl SandboxCgroup {
    /// The cgroup paths for sandbox `id` under `parent`, without touching the filesystem.
    pub fn paths(layout: &CgroupLayout, parent: &str, id: &str) -> Self {
        let sub = |root: &Path| root.join(parent).join(id);
        match layout {
            CgroupLayout::V2 { root } => {
                let dir = sub(root);
                Self {
                    v2: true,
                    memory: dir.clone(),
                    pids: dir.clone(),
                    cpu: dir.clone(),
                    cpuacct: None,
                    freezer: None,
                    unified: Some(dir),
                }
            }
            CgroupLayout::V1 {
                memory,
                pids,
                cpu,
                cpuacct,
                freezer,
                unified,
            } => Self {
                v2: false,
                memory: sub(memory),
                pids: sub(pids),
                cpu: sub(cpu),
                cpuacct: cpuacct.as_deref().map(sub),
                freezer: freezer.as_deref().map(sub),
                unified: unified.as_deref().map(sub),
            },
        }
    }

    /// Creates the directories and writes the limits. On failure, whatever was created is
    /// removed again.
    pub fn create(
        layout: &CgroupLayout,
        parent: &str,
        id: &str,
        limits: &Limits,
    ) -> Result<Self, CgroupError> {
        let cg = Self::paths(layout, parent, id);
        if let CgroupLayout::V2 { root } = layout {
            let parent_dir = root.join(parent);
            mkdir(&parent_dir)?;
            // Controllers must be enabled on the way down; the root usually has them already.
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+memory +pids +cpu");
            write(
                &parent_dir.join("cgroup.subtree_control"),
                "+memory +pids +cpu",
            )?;
        }
        let result = cg.create_dirs().and_then(|()| cg.apply_limits(limits));
        if let Err(e) = result {
            let _ = cg.remove(Duration::from_millis(200));
            return Err(e);
        }
        Ok(cg)
    }

    /// Every directory of this cgroup, one per hierarchy.
    pub fn dirs(&self) -> Vec<&Path> {
        let mut dirs = vec![self.memory.as_path()];
        for d in [
            Some(&self.pids),
            Some(&self.cpu),
            self.cpuacct.as_ref(),
            self.freezer.as_ref(),
            self.unified.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            if !dirs.contains(&d.as_path()) {
                dirs.push(d);
            }
        }
        dirs
    }

    fn create_dirs(&self) -> Result<(), CgroupError> {
        self.dirs().into_iter().try_for_each(mkdir)
    }

    fn apply_limits(&self, limits: &Limits) -> Result<(), CgroupError> {
        if self.v2 {
            if let Some(m) = limits.memory_bytes {
                write(&self.memory.join("memory.max"), &m.to_string())?;
                let _ = std::fs::write(self.memory.join("memory.swap.max"), "0");
            }
            if let Some(p) = limits.pids {
                write(&self.pids.join("pids.max"), &p.to_string())?;
            }
            if let Some(c) = limits.cpu_millis {
                write(
                    &self.cpu.join("cpu.max"),
                    &format!("{} {CPU_PERIOD_US}", c * CPU_PERIOD_US / 1000),
                )?;
            }
        } else {
            if let Some(m) = limits.memory_bytes {
                write(&self.memory.join("memory.limit_in_bytes"), &m.to_string())?;
                // Without swap accounting this file is absent; with it, forbid swapping out.
                let _ = std::fs::write(
                    self.memory.join("memory.memsw.limit_in_bytes"),
                    m.to_string(),
                );
            }
            if let Some(p) = limits.pids {
                write(&self.pids.join("pids.max"), &p.to_string())?;
            }
            if let Some(c) = limits.cpu_millis {
                write(
                    &self.cpu.join("cpu.cfs_period_us"),
                    &CPU_PERIOD_US.to_string(),
                )?;
                write(
                    &self.cpu.join("cpu.cfs_quota_us"),
                    &(c * CPU_PERIOD_US / 1000).to_string(),
                )?;
            }
        }
        Ok(())
    }

    /// Moves the calling process into every hierarchy of this cgroup. Children it creates
    /// afterwards start inside.
    pub fn join_self(&self) -> Result<(), CgroupError> {
        for dir in self.dirs() {
            write(&dir.join("cgroup.procs"), "0")?;
        }
        Ok(())
    }

    /// Pids (host view) currently in the sandbox.
    pub fn procs(&self) -> Vec<i32> {
        std::fs::read_to_string(self.pids.join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Kills every process in the sandbox: `cgroup.kill` where a v2 hierarchy exists, else
    /// SIGKILL to each listed process until none is left.
    pub fn kill(&self) {
        if let Some(unified) = &self.unified
            && std::fs::write(unified.join("cgroup.kill"), "1").is_ok()
        {
            return;
        }
        for _ in 0..10 {
            let procs = self.procs();
            if procs.is_empty() {
                return;
            }
            for pid in procs {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }

    /// Freezes (`true`) or thaws (`false`) every process in the sandbox.
    pub fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        if let Some(unified) = &self.unified {
            return write(
                &unified.join("cgroup.freeze"),
                if frozen { "1" } else { "0" },
            );
        }
        match &self.freezer {
            Some(f) => write(
                &f.join("freezer.state"),
                if frozen { "FROZEN" } else { "THAWED" },
            ),
            None => Err(CgroupError::MissingController("freezer")),
        }
    }

    /// Current accounting figures; a missing file reads as zero.
    pub fn stats(&self) -> CgroupStats {
        if self.v2 {
            CgroupStats {
                memory_bytes: read_u64(&self.memory.join("memory.current")).unwrap_or(0),
                memory_cache_bytes: keyed(&self.memory.join("memory.stat"), "file").unwrap_or(0),
                cpu_ns: keyed(&self.cpu.join("cpu.stat"), "usage_usec").unwrap_or(0) * 1000,
                pids: read_u64(&self.pids.join("pids.current")).unwrap_or(0),
                oom_kills: keyed(&self.memory.join("memory.events"), "oom_kill").unwrap_or(0),
            }
        } else {
            let cpu_ns = match &self.cpuacct {
                Some(d) => read_u64(&d.join("cpuacct.usage")),
                None => None,
            }
            .or_else(|| {
                let d = self.unified.as_ref()?;
                keyed(&d.join("cpu.stat"), "usage_usec").map(|u| u * 1000)
            });
            CgroupStats {
                memory_bytes: read_u64(&self.memory.join("memory.usage_in_bytes")).unwrap_or(0),
                memory_cache_bytes: keyed(&self.memory.join("memory.stat"), "total_cache")
                    .unwrap_or(0),
                cpu_ns: cpu_ns.unwrap_or(0),
                pids: read_u64(&self.pids.join("pids.current")).unwrap_or(0),
                oom_kills: keyed(&self.memory.join("memory.oom_control"), "oom_kill").unwrap_or(0),
            }
        }
    }

    /// Removes the directories, waiting up to `timeout` for exiting processes to leave.
    /// Missing directories are fine (removal is idempotent).
    pub fn remove(&self, timeout: Duration) -> Result<(), CgroupError> {
        let deadline = Instant::now() + timeout;
        for dir in self.dirs() {
            loop {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        return Err(CgroupError::Busy(dir.to_path_buf()));
                    }
                    Err(e) => return Err(io_err(dir)(e)),
                }
            }
        }
        Ok(())
    }
}
