//! The sandbox manager: templates with warm pools, the registry of live sandboxes, timeouts,
//! pause/resume. Everything that blocks (launch, destroy, envd setup) runs on tokio's
//! blocking pool.

mod entry;
mod envd;
mod interpreter;
mod list;
mod persist;
mod restore;

pub use entry::{Entry, SandboxStatus};
pub use list::{ListPage, ListQuery, parse_metadata_filter, parse_states, parse_time};

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::clock;
use bulkhead_runtime::{BindMount, Limits, Pool, PoolKey, Runtime};
use bulkhead_store::{Store, StoreError, TeamId};
use rand::Rng;

use crate::error::ApiError;

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
    /// The bulkhead binary, bind-mounted into sandboxes to run envd.
    pub envd_binary: PathBuf,
    /// Timeout when a create names none.
    pub default_timeout: Duration,
    /// Upper bound of any sandbox's lifetime from its creation.
    pub max_lifetime: Duration,
    /// Environment variable names removed from `envVars` before they reach a sandbox
    /// (e.g. cloud credentials that a client forwards but the sandbox must not hold).
    pub strip_env_vars: Vec<String>,
    /// Storage attached to every sandbox before any user code runs.
    pub storage: Option<StorageConfig>,
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
    templates: HashMap<String, Arc<Template>>,
    sandboxes: RwLock<HashMap<String, Arc<Entry>>>,
}

/// A create request after parsing.
#[derive(Debug, Default)]
pub struct CreateRequest {
    /// Template name or id.
    pub template: String,
    /// Seconds; `None` = the default.
    pub timeout: Option<i64>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Sandbox-wide env vars.
    pub env_vars: BTreeMap<String, String>,
    /// Pause instead of kill at timeout.
    pub auto_pause: bool,
    /// `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

/// Where envd's binary appears inside every sandbox.
pub const ENVD_PATH: &str = "/.bulkhead/bulkhead";

fn token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..40)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl Manager {
    /// Starts the pools of every template. Call [`Manager::restore`] before serving.
    pub fn new(runtime: Runtime, store: Store, config: ManagerConfig) -> Arc<Self> {
        let mut templates = HashMap::new();
        for t in &config.templates {
            let mut binds = vec![BindMount {
                source: config.envd_binary.clone(),
                target: ENVD_PATH.into(),
                read_only: true,
            }];
            // Shared storage is part of the pooled sandboxes' mounts; a per-sandbox prefix
            // can only be attached at hand-over, once the sandbox id is known.
            if let Some(st) = config
                .storage
                .as_ref()
                .filter(|st| st.sandbox_prefix.is_none())
            {
                binds.push(BindMount {
                    source: st.host_root.clone(),
                    target: st.target.clone(),
                    read_only: st.read_only,
                });
            }
            let key = PoolKey {
                layers: t.layers.clone(),
                limits: t.limits.clone(),
                binds,
            };
            let prepare: bulkhead_runtime::Prepare = if t.code_interpreter {
                Arc::new(|sb| envd::start(sb).and_then(|()| interpreter::start(sb)))
            } else {
                Arc::new(envd::start)
            };
            // Pools stay empty until `restore` has dealt with what a previous run left on disk
            // (it would otherwise take a filling pool's sandboxes for leftovers).
            let pool = Pool::with_prepare(runtime.clone(), key, 0, Some(prepare));
            let template = Arc::new(Template {
                config: t.clone(),
                pool,
            });
            templates.insert(t.id.clone(), template.clone());
            for a in &t.aliases {
                templates.insert(a.clone(), template.clone());
            }
        }
        Arc::new(Self {
            config,
            runtime,
            store,
            templates,
            sandboxes: RwLock::new(HashMap::new()),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Entry>>> {
        self.sandboxes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Entry>>> {
        self.sandboxes.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates a sandbox for `team`. Honours `Idempotency-Key`: a repeated key returns the
    /// sandbox the first request created, as long as it lives.
    pub async fn create(
        self: &Arc<Self>,
        team: &str,
        req: CreateRequest,
    ) -> Result<Arc<Entry>, ApiError> {
        if let Some(key) = &req.idempotency_key {
            if key.is_empty()
                || key.len() > 255
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(ApiError::BadRequest(
                    "Idempotency-Key must be 1-255 characters of [a-z0-9-]".into(),
                ));
            }
            if let Some(entry) = self.by_idempotency_key(team, key).await? {
                return Ok(entry);
            }
        }
        let template =
            self.templates.get(&req.template).cloned().ok_or_else(|| {
                ApiError::NotFound(format!("template '{}' not found", req.template))
            })?;
        let timeout = match req.timeout {
            None => self.config.default_timeout,
            Some(t) if t <= 0 => {
                return Err(ApiError::BadRequest(
                    "Timeout must be greater than 0".into(),
                ));
            }
            Some(t) => Duration::from_secs(t as u64).min(self.config.max_lifetime),
        };
        let mut env_vars = req.env_vars;
        env_vars.retain(|k, _| !self.config.strip_env_vars.iter().any(|s| s == k));
        let envd_token = token();
        let init = envd::InitRequest {
            env_vars,
            access_token: envd_token.clone(),
            default_user: "user".into(),
        };
        let t = template.clone();
        let storage = self
            .config
            .storage
            .clone()
            .filter(|st| st.sandbox_prefix.is_some());
        let sandbox = tokio::task::spawn_blocking(move || {
            let sb = t
                .pool
                .create()
                .map_err(|e| ApiError::Busy(format!("could not start a sandbox: {e}")))?;
            // The sandbox's own part of the storage, before any user code can run.
            if let Some(st) = storage {
                let dir = st.host_dir_for(sb.id());
                let attached = create_shared_dirs(&st.host_root, &dir)
                    .and_then(|()| sb.attach(&dir, &st.target, st.read_only));
                if let Err(e) = attached {
                    let _ = sb.destroy();
                    return Err(ApiError::Internal(format!(
                        "attaching storage {}: {e}",
                        dir.display()
                    )));
                }
            }
            if let Err(e) = envd::init(&sb, &init) {
                let _ = sb.destroy();
                return Err(ApiError::Internal(format!("envd setup failed: {e}")));
            }
            Ok(sb)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
        let now = clock::now();
        let limits = &template.config.limits;
        let entry = Arc::new(Entry {
            id: sandbox.id().to_string(),
            team: team.to_string(),
            template_id: template.config.id.clone(),
            alias: (req.template != template.config.id).then(|| req.template.clone()),
            started_at: now,
            metadata: req.metadata,
            envd_token,
            cpu_count: limits
                .cpu_millis
                .map(|m| m.div_ceil(1000) as u32)
                .unwrap_or(1),
            memory_mb: limits.memory_bytes.map(|b| b >> 20).unwrap_or(0),
            disk_mb: limits.disk_bytes.map(|b| b >> 20).unwrap_or(0),
            auto_pause: req.auto_pause,
            sandbox: Arc::new(sandbox),
            mutable: Mutex::new(entry::Mutable {
                end_at: clock::plus(now, timeout),
                status: SandboxStatus::Running,
                last_cpu: None,
            }),
        });
        let rec = persist::record(&entry, req.idempotency_key.clone());
        match persist::db(&self.store, move |s| Ok(s.insert_sandbox(&rec))).await? {
            Ok(()) => {}
            // Two creates with one Idempotency-Key raced: keep the first, drop this one.
            Err(StoreError::Conflict { .. }) if req.idempotency_key.is_some() => {
                destroy(entry).await;
                let key = req.idempotency_key.unwrap_or_default();
                return self.by_idempotency_key(team, &key).await?.ok_or_else(|| {
                    ApiError::Conflict("a create with this Idempotency-Key failed".into())
                });
            }
            Err(e) => {
                destroy(entry).await;
                return Err(ApiError::Internal(format!("recording the sandbox: {e}")));
            }
        }
        self.write().insert(entry.id.clone(), entry.clone());
        tracing::info!(sandbox_id = %entry.id, template_id = %entry.template_id, "sandbox created");
        Ok(entry)
    }

    async fn by_idempotency_key(
        &self,
        team: &str,
        key: &str,
    ) -> Result<Option<Arc<Entry>>, ApiError> {
        let (t, k) = (TeamId::new(team), key.to_string());
        let rec = persist::db(&self.store, move |s| s.find_by_idempotency_key(&t, &k)).await?;
        Ok(rec.and_then(|r| self.get(team, &r.sandbox_id)))
    }

    /// The sandbox, if it exists and belongs to `team` (another team's sandbox is "not found").
    pub fn get(&self, team: &str, id: &str) -> Option<Arc<Entry>> {
        self.read().get(id).filter(|e| e.team == team).cloned()
    }

    /// The sandbox regardless of team (for the edge proxy, which authenticates by token).
    pub fn get_any(&self, id: &str) -> Option<Arc<Entry>> {
        self.read().get(id).cloned()
    }

    /// Kills and removes a sandbox. Returns false when there was none.
    pub async fn kill(&self, team: &str, id: &str) -> bool {
        let entry = {
            let mut map = self.write();
            match map.get(id) {
                Some(e) if e.team == team => map.remove(id),
                _ => None,
            }
        };
        match entry {
            Some(e) => {
                self.forget(&e.id).await;
                destroy(e).await;
                true
            }
            None => false,
        }
    }

    /// Deletes the sandbox's row; a failure is logged (the row is removed at next start).
    async fn forget(&self, id: &str) {
        let id2 = id.to_string();
        if let Err(e) = persist::db(&self.store, move |s| s.delete_sandbox(&id2)).await {
            tracing::warn!(sandbox_id = %id, error = %e, "could not delete the sandbox record");
        }
    }

    async fn save_end(&self, entry: &Arc<Entry>) {
        let (id, end) = (entry.id.clone(), entry.end_at());
        if let Err(e) = persist::db(&self.store, move |s| s.set_sandbox_end(&id, end)).await {
            tracing::warn!(sandbox_id = %entry.id, error = %e, "could not record the new timeout");
        }
    }

    async fn save_status(&self, entry: &Arc<Entry>) {
        let (id, st) = (entry.id.clone(), persist::status_to_store(entry.status()));
        if let Err(e) = persist::db(&self.store, move |s| s.set_sandbox_state(&id, st)).await {
            tracing::warn!(sandbox_id = %entry.id, error = %e, "could not record the sandbox state");
        }
    }

    /// Sets the end to now + `seconds` (bounded by the maximum lifetime).
    pub async fn set_timeout(&self, team: &str, id: &str, seconds: i64) -> Result<(), ApiError> {
        let entry = self.get(team, id).ok_or_else(|| not_found(id))?;
        if seconds < 0 {
            return Err(ApiError::BadRequest("timeout must not be negative".into()));
        }
        let limit = clock::plus(entry.started_at, self.config.max_lifetime);
        let end = (clock::plus(clock::now(), Duration::from_secs(seconds as u64))).min(limit);
        entry.lock().end_at = end;
        self.save_end(&entry).await;
        Ok(())
    }

    /// Connects to a sandbox: extends a running one's timeout (never shortens it) or resumes
    /// a paused one. Returns whether it was resumed.
    pub async fn connect(
        &self,
        team: &str,
        id: &str,
        timeout: Option<i64>,
    ) -> Result<(Arc<Entry>, bool), ApiError> {
        let entry = self.get(team, id).ok_or_else(|| not_found(id))?;
        let resumed = entry.status() == SandboxStatus::Paused;
        if resumed {
            let sb = entry.sandbox.clone();
            tokio::task::spawn_blocking(move || sb.set_frozen(false))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .map_err(|e| ApiError::Internal(format!("resume: {e}")))?;
            entry.lock().status = SandboxStatus::Running;
            self.save_status(&entry).await;
        }
        let secs = timeout
            .filter(|t| *t > 0)
            .map(|t| t as u64)
            .unwrap_or(self.config.default_timeout.as_secs());
        let wanted = (clock::plus(clock::now(), Duration::from_secs(secs)))
            .min(clock::plus(entry.started_at, self.config.max_lifetime));
        {
            let mut m = entry.lock();
            if resumed || wanted > m.end_at {
                m.end_at = wanted;
            }
        }
        self.save_end(&entry).await;
        Ok((entry, resumed))
    }

    /// Freezes a sandbox. `Ok(false)` when it was already paused.
    pub async fn pause(&self, team: &str, id: &str) -> Result<bool, ApiError> {
        let entry = self.get(team, id).ok_or_else(|| not_found(id))?;
        let paused = pause_entry(&entry).await?;
        self.save_status(&entry).await;
        Ok(paused)
    }

    /// Sandboxes of `team`, filtered and paginated.
    pub fn list(&self, team: &str, query: &ListQuery) -> Result<ListPage, ApiError> {
        let entries: Vec<Arc<Entry>> = self
            .read()
            .values()
            .filter(|e| e.team == team)
            .cloned()
            .collect();
        list::page(entries, query)
    }

    /// Kills (or pauses, with auto-pause) every sandbox whose end has passed, and removes
    /// sandboxes whose init died on its own (killed from outside the server). Runs forever.
    pub async fn reap_expired(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let now = clock::now();
            let expired: Vec<Arc<Entry>> = self
                .read()
                .values()
                .filter(|e| e.end_at() <= now)
                .cloned()
                .collect();
            let dead: Vec<Arc<Entry>> = self
                .read()
                .values()
                .filter(|e| !e.sandbox.is_running())
                .cloned()
                .collect();
            for e in dead {
                if self.write().remove(&e.id).is_some() {
                    tracing::warn!(sandbox_id = %e.id, "sandbox died outside the server's control; removing it");
                    self.forget(&e.id).await;
                    destroy(e).await;
                }
            }
            for e in expired {
                if e.auto_pause && e.status() == SandboxStatus::Running {
                    if pause_entry(&e).await.is_ok() {
                        tracing::info!(sandbox_id = %e.id, "sandbox paused at its timeout");
                        // Paused sandboxes are kept until the maximum lifetime.
                        e.lock().end_at = clock::plus(e.started_at, self.config.max_lifetime);
                        self.save_status(&e).await;
                        self.save_end(&e).await;
                    }
                    continue;
                }
                if self.write().remove(&e.id).is_some() {
                    tracing::info!(sandbox_id = %e.id, "sandbox timed out");
                    self.forget(&e.id).await;
                    destroy(e).await;
                }
            }
        }
    }

    /// Kills every sandbox and forgets it (a clean server stop).
    pub async fn kill_all(&self) {
        let all: Vec<Arc<Entry>> = self.write().drain().map(|(_, e)| e).collect();
        for e in all {
            self.forget(&e.id).await;
            destroy(e).await;
        }
    }

    /// Number of live sandboxes.
    pub fn count(&self) -> usize {
        self.read().len()
    }
}

/// Creates `dir` below `root`, every new component open to all sandbox uids (0777), as the
/// storage root itself is: sandboxes run as their own unprivileged host uids.
fn create_shared_dirs(root: &std::path::Path, dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let rel = dir
        .strip_prefix(root)
        .map_err(|_| std::io::Error::other("storage path outside its root"))?;
    let mut path = root.to_path_buf();
    for comp in rel.components() {
        path.push(comp);
        match std::fs::create_dir(&path) {
            Ok(()) => std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("sandbox {id} not found"))
}

async fn pause_entry(entry: &Arc<Entry>) -> Result<bool, ApiError> {
    if entry.status() == SandboxStatus::Paused {
        return Ok(false);
    }
    let sb = entry.sandbox.clone();
    tokio::task::spawn_blocking(move || sb.set_frozen(true))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(format!("pause: {e}")))?;
    entry.lock().status = SandboxStatus::Paused;
    Ok(true)
}

async fn destroy(entry: Arc<Entry>) {
    let id = entry.id.clone();
    let sandbox = entry.sandbox.clone();
    drop(entry);
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(e) = sandbox.destroy() {
            tracing::warn!(sandbox_id = %id, error = %e, "sandbox cleanup incomplete");
        }
    })
    .await;
}
