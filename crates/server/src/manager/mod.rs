//! The sandbox manager: templates with warm pools, the registry of live sandboxes, timeouts,
//! pause/resume. It speaks no HTTP: its operations take parsed values and fail with
//! [`ManagerError`]; `api/` reaches it through [`SandboxBackend`]. Everything that blocks
//! (launch, destroy, envd setup, SQLite) runs on tokio's blocking pool.

mod admission;
mod backend;
mod create;
mod entry;
mod envd;
mod error;
pub(crate) mod interpreter;
mod lifecycle;
mod list;
mod metrics;
mod network;
mod persist;
mod reap;
mod restore;
pub mod sandbox_logs;
mod service;

pub use admission::{AdmissionConfig, Refusal};
pub use backend::{Connected, SandboxBackend};
pub use bulkhead_store::{SandboxRecord, SandboxStatus, TeamId};
pub use create::{CreateRequest, ENVD_PATH};
pub use entry::Entry;
pub use envd::EnvdError;
pub use error::{Invalid, ManagerError};
pub use list::{ListPage, ListQuery, MAX_PAGE};
pub use metrics::{MAX_SANDBOXES_PER_REQUEST, MetricSample, MetricsWindow};
pub use network::{NetworkRequest, NetworkSettings, NetworkView};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bulkhead_runtime::{BindMount, Limits, Pool, PoolKey, Runtime};
use bulkhead_store::Store;

/// A template: a layer stack and its limits.
#[derive(Debug, Clone)]
pub struct TemplateConfig {
    /// Template id (what `templateID` names).
    pub id: String,
    /// Other names it answers to.
    pub aliases: Vec<String>,
    /// Layer directories, bottom first.
    pub layers: Vec<PathBuf>,
    /// Limits of its sandboxes.
    pub limits: Limits,
    /// Warm pool size.
    pub pool_size: usize,
    /// Runs the code-interpreter server (port 49999) in every sandbox, started and warmed
    /// while pooled. The root filesystem must bring python3 with ipykernel.
    pub code_interpreter: bool,
    /// The image's environment (`ENV`), under every create's `envVars`.
    pub env: Vec<(String, String)>,
    /// Storage the template declares (its own bucket), in place of the server's.
    pub storage: Option<StorageConfig>,
    /// A template's `start_cmd` that was still running when the build's snapshot was taken:
    /// a filesystem snapshot holds no process, so it is started again in every sandbox while
    /// pooled, and the sandbox joins the pool once `ready_cmd` succeeds.
    pub service: Option<ServiceCmd>,
    /// The only team that may create from it (a snapshot); `None` = every team.
    pub owner: Option<TeamId>,
    /// The image's `WORKDIR` (not `/`): where the sandbox's commands start unless they
    /// name a directory, as on E2B (envd's default working directory).
    pub workdir: Option<String>,
}

/// A command started in every sandbox of a template before hand-over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCmd {
    /// Run with `/bin/sh -c`, as root, detached.
    pub start_cmd: String,
    /// Polled (every 100 ms) until it exits 0; `None` = the first listening TCP port.
    pub ready_cmd: Option<String>,
    /// Working directory (the image's `WORKDIR`).
    pub workdir: Option<String>,
    /// Its environment (the image's `ENV`).
    pub env: Vec<(String, String)>,
}

impl TemplateConfig {
    /// A template of `layers` with default limits and nothing running in it.
    pub fn new(id: impl Into<String>, layers: Vec<PathBuf>) -> Self {
        Self {
            id: id.into(),
            aliases: Vec::new(),
            layers,
            limits: Limits::default(),
            pool_size: 0,
            code_interpreter: false,
            env: Vec::new(),
            storage: None,
            service: None,
            owner: None,
            workdir: None,
        }
    }
}

/// The storage every sandbox sees (a bucket mounted on the host, or a local directory).
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// The host directory (a FUSE mount of the bucket, or a plain directory).
    pub host_root: PathBuf,
    /// Where it appears inside sandboxes, e.g. `/opt/sentient`.
    pub target: PathBuf,
    /// Mount read-only inside sandboxes.
    pub read_only: bool,
    /// A per-sandbox sub-path such as `executions/{sandbox_id}`: each sandbox then sees only
    /// its own part of the storage. `None` = every sandbox sees all of it.
    pub sandbox_prefix: Option<String>,
}

impl StorageConfig {
    /// The host directory a given sandbox gets.
    pub fn host_dir_for(&self, sandbox_id: &str) -> PathBuf {
        match &self.sandbox_prefix {
            Some(p) => self.host_root.join(
                p.replace("{sandbox_id}", sandbox_id)
                    .trim_start_matches('/'),
            ),
            None => self.host_root.clone(),
        }
    }
}

/// Settings of the manager.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Templates served.
    pub templates: Vec<TemplateConfig>,
    /// The bulkhead binary, bind-mounted into sandboxes to run envd (when there is no
    /// `envd_layer`).
    pub envd_binary: PathBuf,
    /// A directory holding only `.bulkhead/bulkhead` (the binary, hard-linked or copied),
    /// stacked as the top layer of every sandbox in place of the bind: a layer's path never
    /// shows in the sandbox's `/proc/self/mountinfo` (the overlay names its layers
    /// relatively), where a bind shows the binary's host path.
    pub envd_layer: Option<PathBuf>,
    /// Timeout when a create names none.
    pub default_timeout: Duration,
    /// Upper bound of any sandbox's lifetime from its creation.
    pub max_lifetime: Duration,
    /// Environment variable names removed from `envVars` before they reach a sandbox
    /// (e.g. cloud credentials that a client forwards but the sandbox must not hold).
    pub strip_env_vars: Vec<String>,
    /// Storage attached to every sandbox before any user code runs.
    pub storage: Option<StorageConfig>,
    /// The sandbox network; `None` = loopback only.
    pub network: Option<NetworkSettings>,
    /// Limits a create must pass ([`AdmissionConfig`]).
    pub admission: AdmissionConfig,
}

struct Template {
    config: TemplateConfig,
    pool: Pool,
}

/// The registry and everything that changes it.
pub struct Manager {
    config: ManagerConfig,
    runtime: Runtime,
    store: Store,
    templates: RwLock<HashMap<String, Arc<Template>>>,
    sandboxes: RwLock<HashMap<String, Arc<Entry>>>,
    admission: admission::Admission,
}

impl Manager {
    /// Starts the pools of every template. Call [`Manager::restore`] before serving.
    pub fn new(runtime: Runtime, store: Store, config: ManagerConfig) -> Arc<Self> {
        let mut templates = HashMap::new();
        for t in &config.templates {
            let template = make_template(&runtime, &config, t.clone(), 0);
            index_template(&mut templates, template);
        }
        let admission = admission::Admission::new(config.admission.clone());
        Arc::new(Self {
            config,
            runtime,
            store,
            templates: RwLock::new(templates),
            sandboxes: RwLock::new(HashMap::new()),
            admission,
        })
    }

    /// The template `name` (an id or an alias).
    fn template(&self, name: &str) -> Option<Arc<Template>> {
        self.templates
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Every template once, by id.
    pub fn template_configs(&self) -> Vec<TemplateConfig> {
        let all = self.templates.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<TemplateConfig> = all
            .iter()
            .filter(|(k, t)| **k == t.config.id)
            .map(|(_, t)| t.config.clone())
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Warm sandboxes ready per template (snapshots, whose ids are their team's, left out).
    pub fn pool_sizes(&self) -> Vec<(String, usize)> {
        let all = self.templates.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(String, usize)> = all
            .iter()
            .filter(|(k, t)| **k == t.config.id && t.config.owner.is_none())
            .map(|(_, t)| (t.config.id.clone(), t.pool.ready()))
            .collect();
        out.sort();
        out
    }

    /// The storage sandboxes of `template` see: its own bucket, else the server's storage.
    pub fn storage_of(&self, template: &TemplateConfig) -> Option<StorageConfig> {
        template
            .storage
            .clone()
            .or_else(|| self.config.storage.clone())
    }

    /// The template that `name` (an id or alias) names.
    pub fn template_config(&self, name: &str) -> Option<TemplateConfig> {
        self.template(name).map(|t| t.config.clone())
    }

    /// Serves `config` from now on (a new template, or a rebuilt one replacing the template
    /// of the same id: sandboxes already running keep their layers). Its pool starts
    /// filling at once. An alias that another template had moves to this one.
    pub fn register_template(&self, mut config: TemplateConfig) {
        // A template replacing one of the same id keeps that one's aliases (the built
        // `code-interpreter` replacing the root filesystem keeps `code-interpreter-v1`).
        if let Some(old) = self
            .template(&config.id)
            .filter(|t| t.config.id == config.id)
        {
            for a in &old.config.aliases {
                if !config.aliases.contains(a) {
                    config.aliases.push(a.clone());
                }
            }
        }
        let size = config.pool_size;
        let template = make_template(&self.runtime, &self.config, config, size);
        let mut all = self.templates.write().unwrap_or_else(|p| p.into_inner());
        let id = template.config.id.clone();
        all.retain(|_, t| t.config.id != id);
        index_template(&mut all, template);
        tracing::info!(template_id = %id, "template registered");
    }

    /// Stops serving template `id` (its pooled sandboxes are destroyed with the pool).
    /// Returns whether it existed.
    pub fn unregister_template(&self, id: &str) -> bool {
        let mut all = self.templates.write().unwrap_or_else(|p| p.into_inner());
        let before = all.len();
        all.retain(|_, t| t.config.id != id);
        before != all.len()
    }

    /// Live sandboxes of template `id`.
    pub fn sandboxes_of_template(&self, id: &str) -> usize {
        self.read()
            .values()
            .filter(|e| e.record().template_id == id)
            .count()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Entry>>> {
        self.sandboxes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Entry>>> {
        self.sandboxes.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The team's sandbox `id` (another team's sandbox is "not found").
    fn lookup(&self, team: &TeamId, id: &str) -> Option<Arc<Entry>> {
        self.read().get(id).filter(|e| e.belongs_to(team)).cloned()
    }

    /// [`lookup`](Self::lookup), or the error every operation gives for a missing sandbox.
    fn owned(&self, team: &TeamId, id: &str) -> Result<Arc<Entry>, ManagerError> {
        self.lookup(team, id)
            .ok_or_else(|| ManagerError::not_found(id))
    }

    /// The team's sandbox `id`, for operations outside the manager (snapshots).
    ///
    /// # Errors
    /// [`ManagerError::SandboxNotFound`].
    pub fn entry_of(&self, team: &TeamId, id: &str) -> Result<Arc<Entry>, ManagerError> {
        self.owned(team, id)
    }

    /// The sandbox regardless of team (for the edge proxy, which authenticates by token).
    pub fn get_any(&self, id: &str) -> Option<Arc<Entry>> {
        self.read().get(id).cloned()
    }

    /// Every registered sandbox, of every team (for the edge proxy's signed-URL lookup).
    pub fn entries(&self) -> Vec<Arc<Entry>> {
        self.read().values().cloned().collect()
    }

    /// Kills every sandbox and forgets it (a clean server stop).
    pub async fn kill_all(&self) {
        let all: Vec<Arc<Entry>> = self.write().drain().map(|(_, e)| e).collect();
        let mut detaching = Vec::new();
        for e in all {
            self.forget(e.id()).await;
            detaching.extend(destroy(e).await);
        }
        for d in detaching {
            let _ = d.await;
        }
    }

    /// Number of live sandboxes.
    pub fn count(&self) -> usize {
        self.read().len()
    }
}

/// Destroys the sandbox of an entry that has left the registry and returns once its
/// processes and files are gone. Its network is detached after that on a task of its own
/// (the kernel's veth unregistration takes about 30 ms, an RCU grace period, and a DELETE
/// need not wait for it); the handle lets a server stop wait for it. A failure is logged:
/// what is left on disk is removed at the next start.
async fn destroy(entry: Arc<Entry>) -> Option<tokio::task::JoinHandle<()>> {
    let sandbox = entry.sandbox().clone();
    let network = entry.network().cloned();
    drop(entry);
    let id = sandbox.id().to_string();
    envd::forget(&id);
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(e) = sandbox.destroy() {
            tracing::warn!(sandbox_id = %sandbox.id(), error = %e, "sandbox cleanup incomplete");
        }
    })
    .await;
    network.map(|n| {
        // Announced before the DELETE answers, so a create right after it waits for the
        // address instead of finding the pool full.
        n.announce_detach();
        tokio::task::spawn_blocking(move || n.detach_announced(&id))
    })
}

/// A template and its pool (filling to `pool_size` at once when `size` is not 0; `restore`
/// sizes the pools of the templates a server starts with).
fn make_template(
    runtime: &Runtime,
    config: &ManagerConfig,
    t: TemplateConfig,
    size: usize,
) -> Arc<Template> {
    let mut layers = t.layers.clone();
    let mut binds = Vec::new();
    match &config.envd_layer {
        Some(layer) => layers.push(layer.clone()),
        None => binds.push(BindMount {
            source: config.envd_binary.clone(),
            target: ENVD_PATH.into(),
            read_only: true,
            idmap: false,
        }),
    }
    // Shared storage is part of the pooled sandboxes' mounts; a per-sandbox prefix can only
    // be attached at hand-over, once the sandbox id is known.
    if let Some(st) = t
        .storage
        .as_ref()
        .or(config.storage.as_ref())
        .filter(|st| st.sandbox_prefix.is_none())
    {
        binds.push(BindMount {
            source: st.host_root.clone(),
            target: st.target.clone(),
            read_only: st.read_only,
            // One owner per sandbox id on the shared tree, whatever the host uid range.
            idmap: true,
        });
    }
    let key = PoolKey {
        layers,
        limits: t.limits.clone(),
        binds,
    };
    let prepare = network::prepare(
        config.network.clone(),
        t.code_interpreter,
        t.service.clone(),
    );
    // Pools of the starting templates stay empty until `restore` has dealt with what a
    // previous run left on disk (it would otherwise take a filling pool's sandboxes for
    // leftovers).
    let pool = Pool::with_prepare(runtime.clone(), key, size, Some(prepare));
    Arc::new(Template { config: t, pool })
}

fn index_template(all: &mut HashMap<String, Arc<Template>>, template: Arc<Template>) {
    for a in &template.config.aliases {
        all.insert(a.clone(), template.clone());
    }
    all.insert(template.config.id.clone(), template);
}
