//! The build executor: a parsed template directory and its build args and secrets in, a
//! [`BuiltTemplate`] out. Each stage of the Dockerfile is run in order; each RUN step in a
//! build sandbox of its own (the runtime, the sandbox network), whose writable layer becomes
//! the step's layer; COPY and WORKDIR write a layer directly; the other instructions change
//! the image config only. Steps are cached by what they depend on (see `cache.rs`), never by
//! a secret's value. After the last step, `start_cmd` runs once in a sandbox of the image and
//! that sandbox's changes become the snapshot layer (`snapshot.rs`).
//!
//! Secrets: a value lives in this process's memory ([`Secret`]), in a file on the host's
//! `/dev/shm` (memory) for the one step that mounts it, or in that step's environment; every
//! line of output is redacted before it reaches the log, and every layer is scanned for every
//! value before it is stored: a build that would keep a secret fails and names the step.

mod base;
mod cache;
mod context;
mod copy_step;
mod error;
mod executor;
mod layers;
mod run_step;
mod secret;
mod snapshot;

pub use context::{ContextDir, ContextUpload, unpack_into};
pub use error::BuildError;
pub use executor::Builder;
pub use secret::{REDACTED, Redactor, Secret};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bulkhead_runtime::{BindMount, Limits, Sandbox};
use serde::{Deserialize, Serialize};

use crate::store::{Digest, ImageConfig, LayerInfo};
use crate::template_dir::TemplateDir;

/// What one build is asked to do.
pub struct BuildRequest {
    /// The template directory (its files are the build context).
    pub template: TemplateDir,
    /// `--build-arg K=V`, in order.
    pub args: Vec<(String, String)>,
    /// `--secret id=X,...`: values by id.
    pub secrets: BTreeMap<String, Secret>,
    /// `--no-cache`: run every step.
    pub no_cache: bool,
    /// The template's name (what `Sandbox.create(name)` takes).
    pub name: String,
    /// Storage attached while `start_cmd` runs (the template's, as sandboxes will see it).
    pub storage: Option<BindMount>,
    /// Limits of the build sandboxes (from `cpu_count` / `memory_mb`, or the server's).
    pub limits: Limits,
    /// Whether `FROM` may name a path on the server's host (an OCI layout, an archive, a
    /// root filesystem): the server's own builds and its operator's, never another team's
    /// (the path would be read as root).
    pub host_paths: bool,
    /// The built templates (`bulkhead-template/<name>`) `FROM` may name; `None` = every
    /// one (the server's own builds). A team sees its own and the server's.
    pub template_bases: Option<std::collections::BTreeSet<String>>,
}

/// Lines and steps of a build, as it goes. Output lines are already redacted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BuildEvent {
    /// A step begins: `[stage] index/total instruction`.
    Step {
        stage: String,
        index: usize,
        total: usize,
        text: String,
    },
    /// The step was found in the cache.
    Cached { index: usize },
    /// The step finished, with the size of its layer (0 for config-only steps).
    Done {
        index: usize,
        layer_bytes: u64,
        millis: u64,
    },
    /// A line that the step's command printed.
    Output { line: String },
    /// Something the user should know (an ignored key, a skipped secret, a warning).
    Note { message: String },
}

/// Where events go. Called from the build's thread.
pub type EventSink = Arc<dyn Fn(BuildEvent) + Send + Sync>;

/// The network of build sandboxes (RUN steps need apt and pip). The server implements it
/// with `bulkhead-net`; without one, build sandboxes have loopback only.
pub trait BuildNetwork: Send + Sync {
    /// Gives sandbox `sb` internet egress. Blocking.
    fn attach(&self, sb: &Sandbox) -> Result<(), String>;
    /// Removes what `attach` set up. Blocking, idempotent.
    fn detach(&self, id: &str);
}

/// A template as built: everything the server needs to serve it and to show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuiltTemplate {
    /// The name it was built under.
    pub name: String,
    /// Layers, bottom first: the image's, then the snapshot's (when `start_cmd` changed files).
    pub layers: Vec<LayerInfo>,
    /// The image config (environment, user, workdir, history, ...).
    pub config: ImageConfig,
    /// The exact base image of the final stage (`name@sha256:...`), or `scratch`.
    pub base: String,
    /// The `start_cmd`, if any.
    pub start_cmd: Option<String>,
    /// The `ready_cmd`, if any.
    pub ready_cmd: Option<String>,
    /// `start_cmd` was still running when the snapshot was taken: it is started again in
    /// every sandbox before hand-over.
    pub service: bool,
    /// `cpu_count` from `e2b.toml`.
    pub cpu_count: Option<u32>,
    /// `memory_mb` from `e2b.toml`.
    pub memory_mb: Option<u64>,
    /// Digest of the final image's manifest in the image store.
    pub manifest_digest: Digest,
    /// Steps run and steps taken from the cache.
    pub steps_run: usize,
    /// Steps found in the cache.
    pub steps_cached: usize,
}

/// Directories a [`Builder`] works in.
#[derive(Debug, Clone)]
pub struct BuilderDirs {
    /// Per-build scratch space (step writable layers), on the image store's filesystem.
    pub work: PathBuf,
    /// The step cache index and `--mount=type=cache` directories.
    pub cache: PathBuf,
    /// Downloaded registry blobs (OCI layouts of pulled images).
    pub registry: PathBuf,
    /// Secret files while a step runs: a memory filesystem (`/dev/shm/...`).
    pub secrets: PathBuf,
}
