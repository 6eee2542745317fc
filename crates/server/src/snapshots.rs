//! Filesystem snapshots of running sandboxes (E2B's `create_snapshot`, and `fork` on top of
//! it): the sandbox is frozen, its writable layer captured into the image store as a layer
//! on top of its template's, then thawed. A snapshot is kept and served like a built
//! template (`templates/<id>/template.json` with [`SnapshotOf`]), so a sandbox is created
//! from it by id or name, it survives restarts, and `DELETE /templates/{id}` removes it
//! with the layers nothing else uses.
//!
//! A filesystem snapshot holds no process: sandboxes created from it start their template's
//! services afresh, as any create does. Left out of the layer: what the runtime mounts
//! (`/proc`, `/sys`, `/dev`, `/tmp`, `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`) and
//! the storage mount point (the bucket is the bucket, not a file of the sandbox).

use std::path::PathBuf;
use std::sync::Arc;

use bulkhead_builder::build::BuiltTemplate;
use bulkhead_builder::store::{CaptureOptions, Digest, ImageConfig};
use bulkhead_runtime::IDS_PER_SANDBOX;
use bulkhead_store::{SandboxStatus, TeamId};
use serde::{Deserialize, Serialize};

use crate::manager::{Entry, ManagerError};
use crate::templates::{
    INTERPRETER_LABEL, StoredTemplate, TemplateError, Templates, now, valid_name, write_record,
};

/// What a snapshot was taken of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotOf {
    /// The sandbox.
    pub sandbox_id: String,
    /// Its team (only that team lists the snapshot).
    pub team: String,
    /// The template it ran.
    pub template_id: String,
    /// The names the snapshot answers to (E2B's `names`).
    pub names: Vec<String>,
    /// Taken for a fork: its sandboxes are created at once, so it keeps no warm sandbox.
    #[serde(default)]
    pub for_fork: bool,
}

/// Paths a snapshot leaves out (the runtime's mounts and files).
const LEFT_OUT: [&str; 9] = [
    "/proc",
    "/sys",
    "/dev",
    "/tmp",
    "/run/secrets",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    crate::manager::ENVD_PATH,
];

/// A snapshot failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The sandbox is not the team's, or gone.
    #[error(transparent)]
    Manager(#[from] ManagerError),
    /// A bad name, or one in use.
    #[error("{0}")]
    Invalid(String),
    /// Another template or snapshot has that name.
    #[error("the name {0:?} is already used by another template or snapshot")]
    NameTaken(String),
    /// The sandbox is paused (its init, frozen, cannot hand over the writable layer).
    #[error("sandbox {0} is paused: resume it (connect) before taking a snapshot")]
    Paused(String),
    /// Memory snapshots are not possible here.
    #[error(
        "memory snapshots are not supported: a snapshot holds the sandbox's files, not its processes"
    )]
    Memory,
    /// The template (or its storage) failed.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Reading the writable layer or the store failed.
    #[error("capturing the sandbox's files: {0}")]
    Capture(String),
}

/// A fresh snapshot id: `snap-` and 16 lowercase letters and digits.
fn new_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..16)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("snap-{tail}")
}

impl Templates {
    /// Takes a filesystem snapshot of `team`'s sandbox `sandbox_id`, named `name` when given,
    /// and serves it as a template. Blocking (the copy of the writable layer): call it from
    /// a blocking task. The sandbox is frozen while its files are read and thawed
    /// afterwards, also on failure; a paused sandbox is refused.
    ///
    /// # Errors
    /// [`SnapshotError`]: not found, a bad or taken name, a memory snapshot asked for, or a
    /// capture failure (nothing is left behind).
    pub fn snapshot(
        &self,
        team: &TeamId,
        sandbox_id: &str,
        name: Option<&str>,
        memory: bool,
        for_fork: bool,
    ) -> Result<StoredTemplate, SnapshotError> {
        if memory {
            return Err(SnapshotError::Memory);
        }
        if let Some(n) = name {
            if !valid_name(n) {
                return Err(SnapshotError::Invalid(format!(
                    "invalid snapshot name {n:?}: use 1 to 64 lowercase letters, digits, '-' and '_'"
                )));
            }
            if self.get(n).is_some() || self.manager().template_config(n).is_some() {
                return Err(SnapshotError::NameTaken(n.to_string()));
            }
        }
        let entry = self.manager().entry_of(team, sandbox_id)?;
        if entry.status() == SandboxStatus::Paused {
            return Err(SnapshotError::Paused(sandbox_id.to_string()));
        }
        let template_id = entry.record().template_id;
        let parent = self
            .manager()
            .template_config(&template_id)
            .ok_or_else(|| {
                SnapshotError::Capture(format!("its template {template_id:?} is no longer served"))
            })?;
        let stored_parent = self.get(&template_id);
        let layer = capture(self, &entry, parent.storage.as_ref().map(|s| &s.target))?;
        let id = new_id();
        // On a built template: its layers and config with the snapshot's layer on top. On a
        // built-in one: its root filesystem below, a config carrying what it serves.
        let (mut built, base_layers, storage) = match &stored_parent {
            Some(p) => (p.built.clone(), p.base_layers.clone(), p.storage.clone()),
            None => {
                let mut config = ImageConfig {
                    env: parent.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    ..ImageConfig::default()
                };
                if parent.code_interpreter {
                    config
                        .labels
                        .insert(INTERPRETER_LABEL.to_string(), "true".to_string());
                }
                let built = BuiltTemplate {
                    name: id.clone(),
                    layers: Vec::new(),
                    config,
                    base: format!("template:{template_id}"),
                    start_cmd: parent.service.as_ref().map(|s| s.start_cmd.clone()),
                    ready_cmd: parent.service.as_ref().and_then(|s| s.ready_cmd.clone()),
                    service: parent.service.is_some(),
                    cpu_count: None,
                    memory_mb: None,
                    manifest_digest: layer
                        .as_ref()
                        .map_or_else(empty_digest, |l| l.digest.clone()),
                    steps_run: 0,
                    steps_cached: 0,
                };
                (built, parent.layers.clone(), None)
            }
        };
        built.name = name.unwrap_or(&id).to_string();
        built.layers.extend(layer);
        let at = now();
        let record = StoredTemplate {
            id: id.clone(),
            built,
            created_at: at.clone(),
            updated_at: at,
            build_count: 1,
            storage,
            base_layers,
            snapshot: Some(SnapshotOf {
                sandbox_id: sandbox_id.to_string(),
                team: team.as_str().to_string(),
                template_id: template_id.clone(),
                names: name.map(|n| vec![n.to_string()]).unwrap_or_default(),
                for_fork,
            }),
            team: None,
        };
        if record.storage.is_some() {
            let from = self.credentials_path(&template_id);
            if from.is_file() {
                let to = self.credentials_path(&id);
                if let Some(dir) = to.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                std::fs::copy(&from, &to).map_err(|e| {
                    SnapshotError::Capture(format!("copying the template's storage keys: {e}"))
                })?;
            }
            self.remount(&record).map_err(SnapshotError::Capture)?;
        }
        let dir = self.dir().join(&id);
        if let Err(e) = write_record(&dir, &record) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e.into());
        }
        self.manager().register_template(self.config_of(&record));
        tracing::info!(snapshot_id = %id, sandbox_id, template_id = %template_id, "snapshot taken");
        Ok(record)
    }

    /// The team's snapshots, optionally of one sandbox or by one name, by creation.
    pub fn snapshots(
        &self,
        team: &TeamId,
        sandbox_id: Option<&str>,
        name: Option<&str>,
    ) -> Vec<StoredTemplate> {
        let mut out: Vec<StoredTemplate> = self
            .list()
            .into_iter()
            .filter(|t| {
                t.snapshot.as_ref().is_some_and(|s| {
                    s.team == team.as_str()
                        && sandbox_id.is_none_or(|id| s.sandbox_id == id)
                        && name.is_none_or(|n| s.names.iter().any(|m| m == n) || t.id == n)
                })
            })
            .collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        out
    }
}

/// A digest for a snapshot without any change (no layer, no manifest).
fn empty_digest() -> Digest {
    // The sha256 of nothing.
    Digest::parse("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        .unwrap_or_else(|_| unreachable!("a valid digest"))
}

/// Freezes the sandbox, captures its writable layer, thaws it.
fn capture(
    t: &Templates,
    entry: &Arc<Entry>,
    storage_target: Option<&PathBuf>,
) -> Result<Option<bulkhead_builder::store::LayerInfo>, SnapshotError> {
    let sb = entry.sandbox();
    // Asked before the freeze: the init that answers is frozen with the rest.
    let fd = sb
        .writable_layer()
        .map_err(|e| SnapshotError::Capture(format!("reaching the writable layer: {e}")))?;
    sb.set_frozen(true)
        .map_err(|e| SnapshotError::Capture(format!("freezing the sandbox: {e}")))?;
    let upper = PathBuf::from(format!(
        "/proc/self/fd/{}/upper",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ));
    let mut exclude: Vec<PathBuf> = LEFT_OUT.iter().map(PathBuf::from).collect();
    exclude.extend(storage_target.cloned());
    let result = t
        .builder()
        .store()
        .capture_upper(
            &upper,
            &CaptureOptions {
                uid_shift: sb.root_host_id(),
                id_count: IDS_PER_SANDBOX,
                exclude,
                prune_empty: Vec::new(),
            },
        )
        .map_err(|e| SnapshotError::Capture(e.to_string()));
    if let Err(e) = sb.set_frozen(false) {
        tracing::error!(sandbox_id = %entry.id(), error = %e, "the sandbox could not be thawed after its snapshot");
    }
    drop(fd);
    // The snapshot's record names the layer: it must be on disk first.
    if result.is_ok()
        && let Err(e) = t.builder().store().sync_pending()
    {
        return Err(SnapshotError::Capture(e.to_string()));
    }
    result
}
