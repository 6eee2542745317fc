//! Creating a sandbox: a pooled sandbox is handed over, given its storage and its envd
//! settings, recorded, and registered.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bulkhead_runtime::Sandbox;
use bulkhead_store::{SandboxRecord, SandboxStatus, Secret, StoreError, TeamId};

use bulkhead_net::Policy;

use super::error::{Invalid, ManagerError};
use super::network::{self, NetworkRequest, NetworkSettings};
use super::{Entry, Manager, StorageConfig, Template, envd, persist};
use crate::clock;

/// A create request after parsing. New settings are new fields (with a `Default`), each
/// checked in [`Manager::create`] before anything is started.
#[derive(Debug, Default, Clone)]
pub struct CreateRequest {
    /// Template name or id.
    pub template: String,
    /// Seconds until the sandbox times out; `None` = the default. Must be positive.
    pub timeout: Option<i64>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Sandbox-wide env vars.
    pub env_vars: BTreeMap<String, String>,
    /// Pause instead of kill at timeout.
    pub auto_pause: bool,
    /// That pause keeps memory; `false` = filesystem only.
    pub auto_pause_memory: bool,
    /// `allow_internet_access` and `network` (checked in [`Manager::create`]).
    pub network: NetworkRequest,
    /// The idempotency key (already checked for its syntax): a repeated key returns the
    /// sandbox the first request created, as long as it lives.
    pub idempotency_key: Option<String>,
}

/// Where envd's binary appears inside every sandbox.
pub const ENVD_PATH: &str = "/.bulkhead/bulkhead";

fn token() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..40)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl Manager {
    /// Creates a sandbox for `team` and returns its row.
    ///
    /// # Errors
    /// [`ManagerError::Invalid`] for a refused value, [`ManagerError::TemplateNotFound`],
    /// [`ManagerError::NoCapacity`] when no sandbox can be started, and internal errors for
    /// storage, envd or the store; a sandbox started for a failed create is destroyed.
    #[tracing::instrument(skip_all, fields(template_id = %req.template))]
    pub async fn create(
        &self,
        team: &TeamId,
        req: CreateRequest,
    ) -> Result<SandboxRecord, ManagerError> {
        use crate::prometheus::{CreateResult, METRICS};
        let t0 = std::time::Instant::now();
        // Only ids the server knows label the metrics; a team's own template (one it built,
        // a snapshot) is its team's business, and its name a client's choice.
        let known = self.template(&req.template).map(|t| match t.config.owner {
            Some(_) => "(team)".to_string(),
            None => t.config.id.clone(),
        });
        let out = self.create_counted(team, req).await;
        let result = match &out {
            Ok((_, pool_hit)) => CreateResult::Created {
                pool_hit: *pool_hit,
            },
            Err(ManagerError::Refused(_)) => CreateResult::Refused,
            Err(
                ManagerError::Invalid(_)
                | ManagerError::TemplateNotFound { .. }
                | ManagerError::Policy(_),
            ) => CreateResult::Invalid,
            Err(_) => CreateResult::Failed,
        };
        METRICS.create(known.as_deref(), result, t0.elapsed().as_secs_f64());
        out.map(|(rec, _)| rec)
    }

    /// [`Manager::create`]; also says whether a warm sandbox was taken (an idempotent
    /// replay counts as one).
    async fn create_counted(
        &self,
        team: &TeamId,
        req: CreateRequest,
    ) -> Result<(SandboxRecord, bool), ManagerError> {
        let policy = self.requested_policy(&req.network)?;
        if let Some(key) = &req.idempotency_key
            && let Some(rec) = self.by_idempotency_key(team, key).await?
        {
            return Ok((rec, true));
        }
        let template = self
            .template(&req.template)
            .filter(|t| t.config.owner.as_ref().is_none_or(|o| o == team))
            .ok_or_else(|| ManagerError::TemplateNotFound {
                template: req.template.clone(),
            })?;
        let timeout = match req.timeout {
            None => self.config.default_timeout,
            Some(t) if t <= 0 => return Err(Invalid::CreateTimeout.into()),
            Some(t) => Duration::from_secs(t.unsigned_abs()).min(self.config.max_lifetime),
        };
        // Counted until the sandbox is registered (or the create fails).
        let (total, team_count) = {
            let map = self.read();
            (
                map.len(),
                map.values().filter(|e| e.belongs_to(team)).count(),
            )
        };
        let _ticket = self.admission.admit(team, total, team_count)?;
        // The image's ENV first, the create's envVars over it.
        let mut env_vars: std::collections::BTreeMap<String, String> =
            template.config.env.iter().cloned().collect();
        env_vars.extend(req.env_vars);
        env_vars.retain(|k, _| !self.config.strip_env_vars.iter().any(|s| s == k));
        let envd_token = token();
        let kept_env = env_vars.clone();
        let init = envd::InitRequest {
            env_vars,
            access_token: envd_token.clone(),
            default_user: "user".into(),
            default_workdir: template.config.workdir.clone(),
        };
        // A template with storage of its own has it bound while pooled.
        let storage = self
            .config
            .storage
            .clone()
            .filter(|st| st.sandbox_prefix.is_some() && template.config.storage.is_none());
        let t = template.clone();
        let net = self.config.network.clone();
        let (sandbox, pool_hit) = tokio::task::spawn_blocking(move || {
            hand_over(&t, storage.as_ref(), &init, net.as_ref(), policy)
        })
        .await??;
        let now = clock::now();
        let limits = &template.config.limits;
        let mib = |b: Option<u64>| b.map(|b| u32::try_from(b >> 20).unwrap_or(u32::MAX));
        let record = SandboxRecord {
            sandbox_id: sandbox.id().to_string(),
            team_id: team.clone(),
            template_id: template.config.id.clone(),
            alias: (req.template != template.config.id).then_some(req.template),
            started_at: now,
            end_at: clock::plus(now, timeout),
            status: SandboxStatus::Running,
            metadata: req.metadata,
            envd_access_token: Secret::new(envd_token),
            cpu_count: limits
                .cpu_millis
                .map(|m| u32::try_from(m.div_ceil(1000)).unwrap_or(u32::MAX))
                .unwrap_or(1),
            memory_mb: mib(limits.memory_bytes).unwrap_or(0),
            disk_mb: mib(limits.disk_bytes).unwrap_or(0),
            idempotency_key: req.idempotency_key,
            auto_pause: req.auto_pause,
            auto_pause_memory: req.auto_pause_memory,
        };
        let network = self.config.network.as_ref().map(|n| n.network.clone());
        let entry = Arc::new(
            Entry::new(record.clone(), sandbox)
                .with_network(network)
                .with_env_vars(kept_env),
        );
        let row = record.clone();
        let inserted = persist::db(&self.store, "recording the sandbox", move |s| {
            Ok(s.insert_sandbox(&row))
        })
        .await;
        match inserted {
            Ok(Ok(())) => {}
            // Two creates with one idempotency key raced: keep the first, drop this one.
            Ok(Err(StoreError::Conflict { .. })) if record.idempotency_key.is_some() => {
                super::destroy(entry).await;
                let key = record.idempotency_key.unwrap_or_default();
                return self
                    .by_idempotency_key(team, &key)
                    .await?
                    .map(|rec| (rec, pool_hit))
                    .ok_or(ManagerError::IdempotencyKeyFailed);
            }
            Ok(Err(source)) => {
                super::destroy(entry).await;
                return Err(ManagerError::Store {
                    op: "recording the sandbox",
                    source,
                });
            }
            Err(e) => {
                super::destroy(entry).await;
                return Err(e);
            }
        }
        self.write().insert(record.sandbox_id.clone(), entry);
        tracing::info!(sandbox_id = %record.sandbox_id, template_id = %record.template_id, pool_hit, "sandbox created");
        Ok((record, pool_hit))
    }

    /// The team's live sandbox created with idempotency key `key`.
    async fn by_idempotency_key(
        &self,
        team: &TeamId,
        key: &str,
    ) -> Result<Option<SandboxRecord>, ManagerError> {
        let (t, k) = (team.clone(), key.to_string());
        let rec = persist::db(&self.store, "looking up an idempotency key", move |s| {
            s.find_by_idempotency_key(&t, &k)
        })
        .await?;
        Ok(rec
            .and_then(|r| self.lookup(team, &r.sandbox_id))
            .map(|e| e.record()))
    }
}

/// Takes a sandbox from the template's pool (or starts one when the pool is empty: the
/// `bool` says whether a warm one was taken) and readies it for its user: its network
/// policy, its own part of the storage, then envd's settings, all before any user code can
/// run. Blocking.
fn hand_over(
    template: &Template,
    storage: Option<&StorageConfig>,
    init: &envd::InitRequest,
    net: Option<&NetworkSettings>,
    policy: Option<Policy>,
) -> Result<(Sandbox, bool), ManagerError> {
    let (sb, pool_hit) = match template.pool.take() {
        Some(sb) => (sb, true),
        None => (
            template.pool.create().map_err(ManagerError::NoCapacity)?,
            false,
        ),
    };
    if let Err(e) = network::apply_policy(net, &sb, policy) {
        let _ = sb.destroy();
        network::detach(net, sb.id());
        return Err(e);
    }
    if let Some(st) = storage {
        let dir = st.host_dir_for(sb.id());
        let attached = create_shared_dirs(&st.host_root, &dir)
            .and_then(|()| sb.attach_idmapped(&dir, &st.target, st.read_only));
        if let Err(source) = attached {
            let _ = sb.destroy();
            network::detach(net, sb.id());
            return Err(ManagerError::AttachStorage { path: dir, source });
        }
    }
    if let Err(e) = envd::init(&sb, init) {
        let _ = sb.destroy();
        network::detach(net, sb.id());
        return Err(ManagerError::EnvdSetup(e));
    }
    Ok((sb, pool_hit))
}

/// Creates `dir` below `root`, every new component open to all sandbox uids (0777):
/// sandboxes run as their own unprivileged host uids. These are per-sandbox prefixes and the
/// directories leading to them, which no other sandbox sees; the shared local root itself is
/// sticky (set where it is made), and a bucket mount in uniform mode refuses other modes.
fn create_shared_dirs(root: &Path, dir: &Path) -> std::io::Result<()> {
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
