//! The host-side entry point: configuration and sandbox creation.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cgroup::{CgroupLayout, SandboxCgroup, detect_layout};
use crate::error::RuntimeError;
use crate::launch::plan::{LaunchOutcome, LaunchPlan};
use crate::launch::{LaunchFailure, LaunchStep};
use crate::sandbox::{Sandbox, SandboxState};
use crate::spec::{SandboxSpec, valid_id};
use crate::uids::{RANGE, UidSlot};
use crate::undo::Undo;

/// Host-wide runtime settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeConfig {
    /// Where sandbox directories (`sandboxes/<id>`) and uid claims (`uids/`) live.
    pub state_dir: PathBuf,
    /// The `bulkhead` binary; it is run as `<exe> __launch` to start each sandbox.
    pub exe: PathBuf,
    /// Name of Bulkhead's cgroup subtree under each hierarchy root.
    pub cgroup_parent: String,
    /// First host uid handed to sandboxes.
    pub uid_base: u32,
    /// Number of 65 536-id ranges available from `uid_base`.
    pub uid_slots: u32,
    /// Where uid ranges are claimed: one directory for the whole host, so that two
    /// runtimes (two servers, a server and `bulkhead run`) never give one range to two live
    /// sandboxes. On a tmpfs (`/run`), so a reboot frees what crashed processes held.
    #[serde(default = "default_uid_claims_dir")]
    pub uid_claims_dir: PathBuf,
}

/// The host-wide claims directory.
pub const UID_CLAIMS_DIR: &str = "/run/bulkhead/uids";

fn default_uid_claims_dir() -> PathBuf {
    PathBuf::from(UID_CLAIMS_DIR)
}

impl RuntimeConfig {
    /// Defaults: state under `state_dir`, the current executable as launcher.
    pub fn new(state_dir: impl Into<PathBuf>, exe: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            exe: exe.into(),
            cgroup_parent: "bulkhead".into(),
            uid_base: 1 << 30,
            uid_slots: 16_384,
            uid_claims_dir: default_uid_claims_dir(),
        }
    }

    /// Checks the values before anything is created.
    pub fn validate(&self) -> Result<(), String> {
        if !valid_cgroup_name(&self.cgroup_parent) {
            return Err(format!("invalid cgroup parent {:?}", self.cgroup_parent));
        }
        let end = u64::from(self.uid_base) + u64::from(self.uid_slots) * u64::from(RANGE);
        if self.uid_base == 0 || self.uid_slots == 0 || end > u64::from(u32::MAX) {
            return Err(format!(
                "uid range {}+{}×65536 does not fit in 32 bits",
                self.uid_base, self.uid_slots
            ));
        }
        Ok(())
    }
}

/// Moves the claims an earlier version kept in `<state>/uids` into the host-wide directory,
/// so that the sandboxes it left running keep their ranges. A slot claimed in both is
/// logged (two live sandboxes would share ids) and left to the host-wide owner.
fn migrate_claims(config: &RuntimeConfig) -> Result<(), RuntimeError> {
    let dir = &config.uid_claims_dir;
    std::fs::create_dir_all(dir).map_err(|source| RuntimeError::StateDir {
        path: dir.clone(),
        source,
    })?;
    let _ = std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let old = config.state_dir.join("uids");
    let Ok(entries) = std::fs::read_dir(&old) else {
        return Ok(());
    };
    for e in entries.filter_map(|e| e.ok()) {
        let id = std::fs::read_to_string(e.path()).unwrap_or_default();
        let owner = format!("{} {}", id.trim(), config.state_dir.display());
        let to = dir.join(e.file_name());
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&to)
        {
            Ok(mut f) => {
                use std::io::Write;
                let _ = f.write_all(owner.as_bytes());
            }
            Err(_) => {
                tracing::error!(slot = ?e.file_name(), sandbox_id = %id.trim(), "uid range claimed twice on this host: another runtime holds it too")
            }
        }
        let _ = std::fs::remove_file(e.path());
    }
    let _ = std::fs::remove_dir(&old);
    Ok(())
}

/// Each sandbox's init reaches its root under the state directory as an unprivileged host
/// uid, so every directory above it must be searchable by others (o+x). A 0700 parent (a
/// temporary directory, say) would make every launch fail with EACCES; say so up front.
fn check_traversable(dir: &Path) -> Result<(), RuntimeError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = dir
        .canonicalize()
        .map_err(|source| RuntimeError::StateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    for ancestor in dir.ancestors() {
        let mode = std::fs::metadata(ancestor)
            .map(|m| m.permissions().mode())
            .unwrap_or(0o755);
        if mode & 0o001 == 0 {
            return Err(RuntimeError::Config(format!(
                "{} (mode {:o}) is not searchable by other users; sandboxes run as unprivileged uids \
                 and must traverse it to reach their root: chmod o+x {} or choose another data directory",
                ancestor.display(),
                mode & 0o7777,
                ancestor.display()
            )));
        }
    }
    Ok(())
}

fn valid_cgroup_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && s != "."
        && s != ".."
}

/// Creates sandboxes. Cheap to clone; safe to share between threads.
#[derive(Debug, Clone)]
pub struct Runtime {
    config: RuntimeConfig,
    layout: CgroupLayout,
}

impl Runtime {
    /// Detects the cgroup layout, prepares the state directory and makes the calling process
    /// a child subreaper, so that sandbox inits (whose launcher exits) are re-parented to it
    /// and can be reaped. Call once per process.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        config.validate().map_err(RuntimeError::Config)?;
        let layout = detect_layout()?;
        let dir = config.state_dir.join("sandboxes");
        std::fs::create_dir_all(&dir).map_err(|source| RuntimeError::StateDir {
            path: dir.clone(),
            source,
        })?;
        let _ = std::fs::set_permissions(
            &config.state_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        );
        check_traversable(&config.state_dir)?;
        migrate_claims(&config)?;
        crate::uids::reclaim_stale(&config.uid_claims_dir, config.uid_base);
        crate::sys::proc::set_child_subreaper().map_err(|source| RuntimeError::StateDir {
            path: "prctl".into(),
            source,
        })?;
        Ok(Self { config, layout })
    }

    /// The configuration in use.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The detected cgroup layout.
    pub fn layout(&self) -> &CgroupLayout {
        &self.layout
    }

    /// Caps the tasks of all sandboxes of this runtime together at `max` (`pids.max` of
    /// the cgroup parent, which the kernel enforces hierarchically): however many sandboxes
    /// fork up to their own limits, the host keeps the rest of its pid space. `None` lifts
    /// the cap. Runtimes sharing a parent share the cap.
    ///
    /// # Errors
    /// [`RuntimeError::Cgroup`] when the parent cannot be made or written.
    pub fn set_pids_budget(&self, max: Option<u64>) -> Result<(), RuntimeError> {
        let root = match &self.layout {
            CgroupLayout::V2 { root } => root,
            CgroupLayout::V1 { pids, .. } => pids,
        };
        let dir = root.join(&self.config.cgroup_parent);
        let value = max.map_or_else(|| "max".to_string(), |n| n.to_string());
        let io = |source| crate::cgroup::CgroupError::Io {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        std::fs::write(dir.join("pids.max"), &value).map_err(io)?;
        tracing::info!(parent = %dir.display(), max = %value, "tasks of all sandboxes capped");
        Ok(())
    }

    pub(crate) fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.config.state_dir.join("sandboxes").join(id)
    }

    /// Starts a sandbox and returns once its init accepts requests. Blocking (a few ms):
    /// call it from a blocking thread in async code.
    ///
    /// On failure nothing is left behind (processes, cgroup, directory, uid range): each step
    /// below registers its undo with a guard that runs them in reverse unless the sandbox
    /// started. A new step adds its line and its undo there.
    pub fn create(&self, spec: SandboxSpec) -> Result<Sandbox, RuntimeError> {
        validate_spec(&spec)?;
        let dir = self.sandbox_dir(&spec.id);
        let mut undo = Undo::new();
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::Exists(spec.id));
            }
            Err(source) => return Err(RuntimeError::StateDir { path: dir, source }),
        }
        undo.push(|| {
            let _ = std::fs::remove_dir_all(&dir);
        });
        // 0711: the sandbox init, already running as its unprivileged host uid, must traverse
        // this directory to reach its root before pivot_root; nothing here is listable.
        let _ = std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o711));
        let hint = rand::random::<u32>() % self.config.uid_slots;
        let slot = UidSlot::claim(
            &self.config.uid_claims_dir,
            self.config.uid_base,
            self.config.uid_slots,
            hint,
            &self.claim_owner(&spec.id),
        )?;
        let claimed = slot.clone();
        undo.push(move || claimed.release());
        let cgroup = SandboxCgroup::create(
            &self.layout,
            &self.config.cgroup_parent,
            &spec.id,
            &spec.limits,
        )?;
        // Killing the cgroup also ends a sandbox init that started but was not handed over.
        let created = cgroup.clone();
        undo.push(move || {
            created.kill();
            let _ = created.remove(Duration::from_secs(2));
        });
        let state = SandboxState {
            id: spec.id.clone(),
            dir: dir.clone(),
            socket: dir.join("control.sock"),
            init_pid: 0,
            uid_slot: slot.slot,
            root_host_id: slot.first,
            cgroup: cgroup.clone(),
        };
        let plan = LaunchPlan {
            spec,
            dir: dir.clone(),
            socket: state.socket.clone(),
            root_host_id: slot.first,
            id_count: RANGE,
            cgroup_dirs: cgroup.dirs().into_iter().map(Path::to_path_buf).collect(),
        };
        let init_pid = self.launch(&plan)?;
        let sandbox = Sandbox::started(SandboxState { init_pid, ..state }, slot)?;
        undo.disarm();
        Ok(sandbox)
    }

    /// What a uid claim of sandbox `id` of this runtime holds: the id and the state
    /// directory (ids are unique per state directory, claims per host).
    fn claim_owner(&self, id: &str) -> String {
        format!("{id} {}", self.config.state_dir.display())
    }

    /// How many uid ranges this runtime's sandboxes hold (for checks that nothing leaked).
    pub fn uid_claims(&self) -> usize {
        let suffix = format!(" {}", self.config.state_dir.display());
        std::fs::read_dir(&self.config.uid_claims_dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| {
                        std::fs::read_to_string(e.path()).is_ok_and(|o| o.ends_with(&suffix))
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// Ids of the sandboxes that have a directory in the state directory: running ones and
    /// leftovers of a process that died without destroying them.
    pub fn sandbox_ids_on_disk(&self) -> Vec<String> {
        std::fs::read_dir(self.config.state_dir.join("sandboxes"))
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|id| valid_id(id))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Removes whatever is left of sandbox `id`: its processes (through its cgroup), cgroups,
    /// uid claim and directory. For sandboxes that cannot be adopted; a running sandbox
    /// that can be adopted is destroyed through [`Sandbox::destroy`] instead. Blocking.
    pub fn remove_leftover(&self, id: &str) -> Result<(), RuntimeError> {
        if !valid_id(id) {
            return Err(RuntimeError::InvalidId(id.to_string()));
        }
        if let Some(sandbox) = Sandbox::adopt(self, id) {
            return sandbox.destroy();
        }
        let dir = self.sandbox_dir(id);
        let cgroup = SandboxCgroup::paths(&self.layout, &self.config.cgroup_parent, id);
        cgroup.kill();
        let result = cgroup.remove(Duration::from_secs(5));
        // Uid claims name their owner; a sandbox that died during launch has no state file.
        let owner = self.claim_owner(id);
        if let Ok(claims) = std::fs::read_dir(&self.config.uid_claims_dir) {
            for claim in claims.filter_map(|e| e.ok()) {
                if std::fs::read_to_string(claim.path()).is_ok_and(|o| o == owner) {
                    let _ = std::fs::remove_file(claim.path());
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        result.map_err(RuntimeError::from)
    }

    fn launch(&self, plan: &LaunchPlan) -> Result<i32, RuntimeError> {
        let exe = &self.config.exe;
        let id = &plan.spec.id;
        let spawn_err = |source| RuntimeError::Spawn {
            exe: exe.clone(),
            source,
        };
        let mut child = Command::new(exe)
            .arg("__launch")
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(spawn_err)?;
        let input = serde_json::to_vec(plan).map_err(|e| {
            RuntimeError::launch(id, LaunchFailure::new(LaunchStep::Launcher, e.to_string()))
        })?;
        // The launcher reads the whole plan before answering; stdin closes at the end of this
        // statement. A launcher that exits without reading it (not a bulkhead binary) gives
        // no answer, which is reported below.
        let sent = child.stdin.take().map(|mut stdin| stdin.write_all(&input));
        let mut output = String::new();
        let read = child
            .stdout
            .take()
            .map(|mut stdout| stdout.read_to_string(&mut output));
        let _ = child.wait();
        match serde_json::from_str::<LaunchOutcome>(&output) {
            Ok(LaunchOutcome::Ready { init_pid }) => Ok(init_pid),
            Ok(LaunchOutcome::Failed(failure)) => Err(RuntimeError::launch(id, failure)),
            Err(_) => Err(RuntimeError::launch(
                id,
                LaunchFailure {
                    step: LaunchStep::Launcher,
                    errno: [sent, read.map(|r| r.map(drop))]
                        .into_iter()
                        .flatten()
                        .find_map(|r| r.err()?.raw_os_error()),
                    detail: format!(
                        "the launcher gave no answer (is {} a bulkhead binary?)",
                        exe.display()
                    ),
                },
            )),
        }
    }
}

fn validate_spec(spec: &SandboxSpec) -> Result<(), RuntimeError> {
    if !valid_id(&spec.id) {
        return Err(RuntimeError::InvalidId(spec.id.clone()));
    }
    if spec.layers.is_empty() {
        return Err(RuntimeError::NoLayers);
    }
    for layer in &spec.layers {
        if !layer.is_absolute() || !layer.is_dir() {
            return Err(RuntimeError::Layer(layer.clone()));
        }
    }
    for b in &spec.binds {
        let refuse = |reason| RuntimeError::Bind {
            source_path: b.source.clone(),
            target: b.target.clone(),
            reason,
        };
        if !b.target.is_absolute()
            || b.target
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(refuse("the target must be an absolute path without '..'"));
        }
        if !b.source.is_absolute() || !b.source.exists() {
            return Err(refuse("the source must be an existing absolute host path"));
        }
    }
    Ok(())
}
