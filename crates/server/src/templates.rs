//! Built templates: the builder's results kept in the data dir (`templates/<id>/template.json`,
//! written whole then renamed), registered with the manager when built and at every start,
//! and removed (refused while sandboxes use them, unless forced) with the layers no other
//! template or image references.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod owners;

use bulkhead_builder::build::{BuildError, BuildRequest, Builder, BuiltTemplate, EventSink};
use bulkhead_runtime::{BindMount, Limits};
use serde::{Deserialize, Serialize};

use crate::manager::{Manager, ServiceCmd, TemplateConfig};

/// Image label that makes a template serve the code interpreter on port 49999.
pub const INTERPRETER_LABEL: &str = "dev.bulkhead.code-interpreter";

/// A template's own bucket, as `[storage]` of its `e2b.toml` declared it (build args
/// expanded). The credentials are not here: they are in the template's 0600 file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateStorage {
    /// Bucket.
    pub bucket: String,
    /// Key prefix in it.
    pub prefix: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// An S3-compatible endpoint.
    pub endpoint: Option<String>,
    /// Where sandboxes see it.
    pub path: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Mounts template storage on the host (the binary does it with `bulkhead mount`).
pub trait StorageMounter: Send + Sync {
    /// Where template `template_id`'s bucket is mounted.
    fn mountpoint(&self, template_id: &str) -> PathBuf;
    /// Mounts it (reusing a live mount of the same configuration); returns the mount point.
    fn mount(
        &self,
        template_id: &str,
        storage: &TemplateStorage,
        credentials_file: Option<&Path>,
    ) -> Result<PathBuf, String>;
}

/// The name of the credentials file in a template's directory.
pub const CREDENTIALS_FILE: &str = "storage-credentials";

/// One built template as kept on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredTemplate {
    /// Template id (also its directory name).
    pub id: String,
    /// The builder's result.
    pub built: BuiltTemplate,
    /// When it was first built (RFC 3339).
    pub created_at: String,
    /// When it was last built.
    pub updated_at: String,
    /// Builds so far.
    pub build_count: u32,
    /// Its own storage, when `e2b.toml` declares one.
    #[serde(default)]
    pub storage: Option<TemplateStorage>,
    /// Layer directories outside the image store, below `built.layers` (a snapshot of a
    /// sandbox of a built-in template sits on its root filesystem).
    #[serde(default)]
    pub base_layers: Vec<PathBuf>,
    /// Set when this is a snapshot of a sandbox (`POST /sandboxes/{id}/snapshots`).
    #[serde(default)]
    pub snapshot: Option<crate::snapshots::SnapshotOf>,
    /// The team that built it, which alone lists, creates from, rebuilds and deletes it, as
    /// on E2B. `None`: the server's own (built at start, or before templates had teams),
    /// seen by every team.
    #[serde(default)]
    pub team: Option<String>,
}

impl StoredTemplate {
    /// The team it belongs to (a snapshot's or a built template's), `None` for the server's.
    pub fn owner(&self) -> Option<&str> {
        self.snapshot
            .as_ref()
            .map(|s| s.team.as_str())
            .or(self.team.as_deref())
    }

    /// Whether `team` may see and use it.
    pub fn visible_to(&self, team: &str) -> bool {
        self.owner().is_none_or(|t| t == team)
    }
}

/// Failures of template operations.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// No template of that id or name.
    #[error("template {0:?} not found")]
    NotFound(String),
    /// Sandboxes use it.
    #[error(
        "template {id:?} is used by {count} running sandbox(es): kill them first, or remove it with --force"
    )]
    InUse {
        /// The template.
        id: String,
        /// Its running sandboxes.
        count: usize,
    },
    /// The build failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A name that cannot be an id.
    #[error("invalid template name {0:?}: use 1 to 64 lowercase letters, digits, '-' and '_'")]
    InvalidName(String),
    /// The name is one of the server's own templates, which only the operator changes.
    #[error(
        "template {0:?} is one of the server's: only the operator's team rebuilds or removes it; choose another --name"
    )]
    ServerTemplate(String),
    /// The name belongs to a template of another team.
    #[error(
        "template name {0:?} is taken (another team's template, or a snapshot): choose another --name"
    )]
    TakenByAnotherTeam(String),
    /// The `[storage]` of `e2b.toml` cannot be used.
    #[error("e2b.toml [storage]: {0}")]
    Storage(String),
    /// Reading or writing the data dir failed.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// To which path.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A stored template could not be decoded.
    #[error("{} is not a template record", .0.display())]
    Corrupt(PathBuf),
}

/// What built templates get from the server.
#[derive(Debug, Clone)]
pub struct TemplateDefaults {
    /// Limits when `e2b.toml` sets none.
    pub limits: Limits,
    /// Warm sandboxes per template.
    pub pool_size: usize,
    /// The storage attached while `start_cmd` runs (what sandboxes will see).
    pub storage: Option<BindMount>,
}

/// The built templates of one server.
pub struct Templates {
    builder: Arc<Builder>,
    dir: PathBuf,
    manager: Arc<Manager>,
    defaults: TemplateDefaults,
    mounter: Option<Arc<dyn StorageMounter>>,
    server_bucket: Option<crate::bucket::BucketAccess>,
    sdk: crate::sdk_builds::SdkBuilds,
    /// The operator's team (the `default` team the server made at its first start): the one
    /// team that may rebuild or remove the server's own templates, import, list and remove
    /// images, and build `FROM` a path on the host.
    operator: std::sync::OnceLock<bulkhead_store::TeamId>,
    /// Names with a build running: a second build of one waits for nothing and is refused
    /// before it touches the template's directory (its storage credentials).
    building: Mutex<std::collections::HashSet<String>>,
}

/// Holds a name in [`Templates::building`] until dropped.
struct Building<'a> {
    set: &'a Mutex<std::collections::HashSet<String>>,
    name: String,
}

impl Drop for Building<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.name);
    }
}

/// The name of the last build's log in a template's directory (the lines the client was
/// sent, build secrets already cut out).
pub const BUILD_LOG_FILE: &str = "build.log";

/// A build log longer than this keeps its first part only (a log is for reading and for the
/// credential audit, not an archive of every pip line).
const BUILD_LOG_MAX: usize = 16 << 20;

/// Whether `name` can be a template id.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Templates {
    /// Templates kept under `dir`.
    ///
    /// # Errors
    /// When `dir` cannot be created.
    pub fn new(
        builder: Arc<Builder>,
        dir: PathBuf,
        manager: Arc<Manager>,
        defaults: TemplateDefaults,
    ) -> Result<Self, TemplateError> {
        std::fs::create_dir_all(&dir).map_err(|source| TemplateError::Io {
            what: "creating",
            path: dir.clone(),
            source,
        })?;
        Ok(Self {
            builder,
            dir,
            manager,
            defaults,
            mounter: None,
            server_bucket: None,
            sdk: crate::sdk_builds::SdkBuilds::default(),
            operator: std::sync::OnceLock::new(),
            building: Mutex::new(std::collections::HashSet::new()),
        })
    }

    /// What the manager serves as `name` (an id or alias).
    pub fn config(&self, name: &str) -> Option<crate::manager::TemplateConfig> {
        self.manager.template_config(name)
    }

    /// The builds E2B's `Template.build()` opened ([`crate::sdk_builds`]).
    pub fn sdk_builds(&self) -> &crate::sdk_builds::SdkBuilds {
        &self.sdk
    }

    /// Lets templates declare storage of their own, mounted by `mounter`.
    #[must_use]
    pub fn with_mounter(mut self, mounter: Arc<dyn StorageMounter>) -> Self {
        self.mounter = Some(mounter);
        self
    }

    /// The bucket behind the server's own storage (`--storage-bucket`), for reading back
    /// what sandboxes wrote and for the credential audit.
    #[must_use]
    pub fn with_server_bucket(mut self, bucket: crate::bucket::BucketAccess) -> Self {
        self.server_bucket = Some(bucket);
        self
    }

    /// The bucket sandboxes of template `id` see: its own (`[storage]` of its `e2b.toml`),
    /// else the server's. `None` when that storage is a local directory (or there is none).
    pub fn bucket_for(&self, id: &str) -> Option<crate::bucket::BucketAccess> {
        use crate::bucket::BucketAccess;
        let own = self.get(id).and_then(|t| t.storage.map(|st| (t.id, st)));
        match own {
            Some((tid, st)) => {
                let creds = self.credentials_path(&tid);
                let region = st.region.clone().unwrap_or_else(|| "us-east-1".into());
                Some(BucketAccess {
                    endpoint: st
                        .endpoint
                        .clone()
                        .unwrap_or_else(|| BucketAccess::aws_endpoint(&region)),
                    bucket: st.bucket,
                    key_prefix: BucketAccess::normalise_prefix(st.prefix.as_deref().unwrap_or("")),
                    region,
                    credentials: bulkhead_s3fs::Credentials::from_shared_file(&creds, "default")
                        .ok(),
                })
            }
            None => self.server_bucket.clone(),
        }
    }

    /// Every credential the server knows that template `id` must not hold: its storage keys
    /// and the server's.
    pub fn credentials_for(&self, id: &str) -> Vec<crate::audit::Credential> {
        let mut out = Vec::new();
        if let Some(t) = self.get(id)
            && t.storage.is_some()
            && let Ok(c) = bulkhead_s3fs::Credentials::from_shared_file(
                &self.credentials_path(&t.id),
                "default",
            )
        {
            out.extend(c.parts_for_leak_scan().into_iter().filter_map(|(what, v)| {
                crate::audit::Credential::new(format!("the template's storage {what}"), v)
            }));
        }
        if let Some(b) = &self.server_bucket {
            out.extend(b.credentials_for_scan("the server's storage"));
        }
        out
    }

    /// The log of template `id`'s last build, when one was kept.
    pub fn build_log(&self, id: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(id).join(BUILD_LOG_FILE)).ok()
    }

    pub(crate) fn credentials_path(&self, id: &str) -> PathBuf {
        self.dir.join(id).join(CREDENTIALS_FILE)
    }

    /// Mounts a stored template's storage again (after a restart). Blocking.
    pub(crate) fn remount(&self, t: &StoredTemplate) -> Result<(), String> {
        let (Some(st), Some(m)) = (&t.storage, &self.mounter) else {
            return Ok(());
        };
        let creds = self.credentials_path(&t.id);
        m.mount(&t.id, st, creds.is_file().then_some(creds.as_path()))
            .map(|_| ())
    }

    /// The manager templates are registered with.
    pub(crate) fn manager(&self) -> &Arc<Manager> {
        &self.manager
    }

    /// Where template records are kept.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The builder (and through it the image store).
    pub fn builder(&self) -> &Arc<Builder> {
        &self.builder
    }

    /// Registers every stored template whose layers are all present; returns how many.
    pub fn load_all(&self) -> usize {
        let mut n = 0;
        for t in self.list() {
            let missing = t
                .built
                .layers
                .iter()
                .any(|l| !self.builder.store().has_layer(&l.diff_id))
                || t.base_layers.iter().any(|d| !d.is_dir());
            if missing {
                tracing::warn!(template_id = %t.id, "a layer of this template is missing from the image store: rebuild it");
                continue;
            }
            if let Err(e) = self.remount(&t) {
                tracing::error!(template_id = %t.id, error = %e, "the template's storage cannot be mounted: not serving it");
                continue;
            }
            self.manager.register_template(self.config_of(&t));
            n += 1;
        }
        n
    }

    /// Every stored template, by id.
    pub fn list(&self) -> Vec<StoredTemplate> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for e in rd.flatten() {
            match read_record(&e.path().join("template.json")) {
                Ok(t) => out.push(t),
                Err(err) => tracing::warn!(error = %err, "skipping a template record"),
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// The template of id or name `name`.
    pub fn get(&self, name: &str) -> Option<StoredTemplate> {
        if valid_name(name)
            && let Ok(t) = read_record(&self.dir.join(name).join("template.json"))
        {
            return Some(t);
        }
        self.list().into_iter().find(|t| t.built.name == name)
    }

    /// How the manager serves a stored template.
    pub fn config_of(&self, t: &StoredTemplate) -> TemplateConfig {
        let store = self.builder.store();
        let b = &t.built;
        let mut limits = self.defaults.limits.clone();
        if let Some(c) = b.cpu_count {
            limits.cpu_millis = Some(u64::from(c) * 1000);
        }
        if let Some(m) = b.memory_mb {
            limits.memory_bytes = Some(m << 20);
        }
        let env: Vec<(String, String)> = b
            .config
            .env
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let service = match (&b.start_cmd, b.service) {
            (Some(cmd), true) => Some(ServiceCmd {
                start_cmd: cmd.clone(),
                ready_cmd: b.ready_cmd.clone(),
                workdir: b.config.workdir.clone(),
                env: env.clone(),
            }),
            _ => None,
        };
        let storage = match (&t.storage, &self.mounter) {
            (Some(st), Some(m)) => Some(crate::manager::StorageConfig {
                host_root: m.mountpoint(&t.id),
                target: PathBuf::from(&st.path),
                read_only: st.read_only,
                sandbox_prefix: None,
            }),
            _ => None,
        };
        TemplateConfig {
            storage,
            id: t.id.clone(),
            aliases: if b.name == t.id {
                Vec::new()
            } else {
                vec![b.name.clone()]
            },
            layers: t
                .base_layers
                .iter()
                .cloned()
                .chain(b.layers.iter().map(|l| store.layer_dir(&l.diff_id)))
                .collect(),
            limits,
            // A snapshot keeps one warm sandbox (a fork's none: its creates come at once).
            pool_size: match &t.snapshot {
                Some(s) if s.for_fork => 0,
                Some(_) => self.defaults.pool_size.min(1),
                None => self.defaults.pool_size,
            },
            code_interpreter: b.config.labels.get(INTERPRETER_LABEL).map(String::as_str)
                == Some("true"),
            env,
            service,
            owner: t
                .owner()
                .map(|o| bulkhead_store::TeamId::new(o.to_string())),
            workdir: b
                .config
                .workdir
                .clone()
                .filter(|w| !w.is_empty() && w != "/"),
        }
    }

    /// The storage the server gives `start_cmd`.
    pub fn storage(&self) -> Option<BindMount> {
        self.defaults.storage.clone()
    }

    /// Limits of build sandboxes.
    pub fn build_limits(&self) -> Limits {
        self.defaults.limits.clone()
    }

    /// Builds `req` (blocking work on the blocking pool), then keeps and serves the result.
    /// A failed build registers nothing.
    ///
    /// # Errors
    /// [`TemplateError::Build`] with the failed step, or a data-dir failure.
    pub async fn build(
        self: &Arc<Self>,
        req: BuildRequest,
        events: EventSink,
        team: Option<&bulkhead_store::TeamId>,
    ) -> Result<StoredTemplate, TemplateError> {
        if !valid_name(&req.name) {
            return Err(TemplateError::InvalidName(req.name.clone()));
        }
        let owner = self.owner_for(&req.name, team)?;
        if !self
            .building
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(req.name.clone())
        {
            return Err(TemplateError::Build(BuildError::Busy(req.name.clone())));
        }
        let _building = Building {
            set: &self.building,
            name: req.name.clone(),
        };
        let mut req = req;
        let storage = match req.template.config.storage.clone() {
            Some(decl) => Some(self.prepare_storage(&mut req, &decl, &events).await?),
            None => None,
        };
        let builder = self.builder.clone();
        let name = req.name.clone();
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let events = tee_log(events, log.clone());
        let t0 = std::time::Instant::now();
        // Every line logged for this build, the builder's included, carries these ids.
        let build_id: String = (0..6)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let span = tracing::info_span!("build", build_id = %build_id, template_id = %name);
        let span2 = span.clone();
        span.in_scope(|| tracing::info!("template build started"));
        let built = tokio::task::spawn_blocking(move || {
            let _in = span2.enter();
            builder.build(req, events)
        })
        .await
        .map_err(|e| TemplateError::Io {
            what: "running the build",
            path: self.dir.clone(),
            source: std::io::Error::other(e),
        })?;
        let secs = t0.elapsed().as_secs_f64();
        crate::prometheus::METRICS.build(built.is_ok(), secs);
        span.in_scope(|| match &built {
            Ok(b) => tracing::info!(
                seconds = secs,
                steps_run = b.steps_run,
                steps_cached = b.steps_cached,
                "template built"
            ),
            Err(e) => tracing::info!(seconds = secs, error = %e, "template build failed"),
        });
        let built = match built {
            Ok(b) => b,
            Err(e) => {
                // A first build that failed leaves no credentials behind.
                if self.get(&name).is_none() {
                    let _ = std::fs::remove_dir_all(self.dir.join(&name));
                }
                return Err(e.into());
            }
        };
        let id = built.name.clone();
        let now = now();
        let prev = self.get(&id);
        let replaced: Vec<_> = prev.as_ref().map_or_else(Vec::new, |p| {
            p.built
                .layers
                .iter()
                .filter(|l| !built.layers.iter().any(|n| n.diff_id == l.diff_id))
                .cloned()
                .collect()
        });
        let record = StoredTemplate {
            id: id.clone(),
            built,
            created_at: prev.as_ref().map_or(now.clone(), |p| p.created_at.clone()),
            updated_at: now,
            build_count: prev.map_or(1, |p| p.build_count + 1),
            storage,
            base_layers: Vec::new(),
            snapshot: None,
            team: owner,
        };
        write_record(&self.dir.join(&id), &record)?;
        let text = std::mem::take(&mut *log.lock().unwrap_or_else(|p| p.into_inner()));
        if let Err(e) = write_private(&self.dir.join(&id).join(BUILD_LOG_FILE), text.as_bytes()) {
            tracing::warn!(template_id = %id, error = %e, "the build log was not kept");
        }
        self.manager.register_template(self.config_of(&record));
        // Removing layer trees takes a while: off the async threads.
        let this = self.clone();
        let freeing = id.clone();
        let _ = tokio::task::spawn_blocking(move || this.free_replaced_layers(&freeing, &replaced))
            .await;
        Ok(record)
    }

    /// After a rebuild: frees the previous build's layers that no template or image uses any
    /// more (each rebuild that changed a step left a full copy of its layers before), unless a
    /// sandbox of the template still runs on them or another build is under way (a full
    /// collection at the next removal frees them then).
    fn free_replaced_layers(&self, id: &str, replaced: &[bulkhead_builder::store::LayerInfo]) {
        if replaced.is_empty() {
            return;
        }
        let running = self.manager.sandboxes_of_template(id);
        if running > 0 || self.builder.busy() {
            tracing::info!(template_id = %id, running, "the previous build's layers are kept while they may be in use");
            return;
        }
        let keep: Vec<_> = self
            .list()
            .iter()
            .flat_map(|t| t.built.layers.iter().map(|l| l.diff_id.clone()))
            .collect();
        match self.builder.store().remove_unused_layers(replaced, &keep) {
            Ok(freed) => {
                tracing::info!(template_id = %id, freed, "the previous build's unused layers were freed")
            }
            Err(e) => {
                tracing::warn!(template_id = %id, error = %e, "the previous build's layers were not freed")
            }
        }
    }

    /// Resolves `[storage]` with the build args, takes its credentials from the build's
    /// secrets into the template's 0600 file, mounts the bucket and gives it to the build
    /// (for `start_cmd`).
    async fn prepare_storage(
        self: &Arc<Self>,
        req: &mut BuildRequest,
        decl: &bulkhead_builder::template_dir::StorageDecl,
        events: &EventSink,
    ) -> Result<TemplateStorage, TemplateError> {
        let Some(mounter) = self.mounter.clone() else {
            return Err(TemplateError::Storage(
                "this server cannot mount template storage".into(),
            ));
        };
        let args = req.args.clone();
        let expand = |v: &str| {
            bulkhead_builder::dockerfile::expand(v, &|k| {
                args.iter()
                    .rev()
                    .find(|(a, _)| a == k)
                    .map(|(_, v)| v.clone())
            })
            .map_err(|e| TemplateError::Storage(e.to_string()))
        };
        let opt = |v: &Option<String>| v.as_deref().map(expand).transpose();
        let st = TemplateStorage {
            bucket: expand(&decl.bucket)?,
            prefix: opt(&decl.prefix)?.filter(|p| !p.is_empty()),
            region: opt(&decl.region)?.filter(|p| !p.is_empty()),
            endpoint: opt(&decl.endpoint)?.filter(|p| !p.is_empty()),
            path: expand(&decl.path)?,
            read_only: decl.read_only,
        };
        if st.bucket.is_empty() {
            return Err(TemplateError::Storage("bucket is empty".into()));
        }
        if !st.path.starts_with('/') {
            return Err(TemplateError::Storage(format!(
                "path {:?} must be absolute",
                st.path
            )));
        }
        let secret = |id: &Option<String>, what: &str| -> Result<Option<String>, TemplateError> {
            match id {
                None => Ok(None),
                Some(id) => req
                    .secrets
                    .get(id)
                    .map(|s| Some(String::from_utf8_lossy(s.expose()).trim().to_string()))
                    .ok_or_else(|| {
                        TemplateError::Storage(format!(
                            "{what} is build secret {id:?}, which was not given: pass --secret id={id},src=FILE"
                        ))
                    }),
            }
        };
        let key = secret(&decl.access_key_secret, "access_key_secret")?;
        let secret_key = secret(&decl.secret_key_secret, "secret_key_secret")?;
        let token = secret(&decl.session_token_secret, "session_token_secret")?;
        let id = req.name.clone();
        let creds = match (key, secret_key) {
            (Some(k), Some(s)) => {
                let mut text =
                    format!("[default]\naws_access_key_id = {k}\naws_secret_access_key = {s}\n");
                if let Some(t) = token {
                    text.push_str(&format!("aws_session_token = {t}\n"));
                }
                let path = self.credentials_path(&id);
                write_private(&path, text.as_bytes())?;
                Some(path)
            }
            (None, None) => None,
            _ => {
                return Err(TemplateError::Storage(
                    "give both access_key_secret and secret_key_secret, or neither".into(),
                ));
            }
        };
        (events)(bulkhead_builder::build::BuildEvent::Note {
            message: format!(
                "storage: bucket {}{} at {}{}; its keys are kept by the server, in no layer and no sandbox",
                st.bucket,
                st.prefix
                    .as_deref()
                    .map(|p| format!(":{p}"))
                    .unwrap_or_default(),
                st.path,
                if st.read_only { " (read-only)" } else { "" }
            ),
        });
        let (m, s2, c2, id2) = (mounter.clone(), st.clone(), creds.clone(), id.clone());
        let host = tokio::task::spawn_blocking(move || m.mount(&id2, &s2, c2.as_deref()))
            .await
            .map_err(|e| TemplateError::Storage(e.to_string()))?
            .map_err(TemplateError::Storage)?;
        req.storage = Some(BindMount {
            source: host,
            target: PathBuf::from(&st.path),
            read_only: st.read_only,
            idmap: true,
        });
        Ok(st)
    }

    /// Removes template `name` and frees the layers nothing else uses. Returns bytes freed.
    ///
    /// # Errors
    /// [`TemplateError::NotFound`], or [`TemplateError::InUse`] without `force`.
    pub fn remove(&self, name: &str, force: bool) -> Result<u64, TemplateError> {
        let t = self
            .get(name)
            .ok_or_else(|| TemplateError::NotFound(name.to_string()))?;
        let count = self.manager.sandboxes_of_template(&t.id);
        if count > 0 && !force {
            return Err(TemplateError::InUse { id: t.id, count });
        }
        self.manager.unregister_template(&t.id);
        let dir = self.dir.join(&t.id);
        std::fs::remove_dir_all(&dir).map_err(|source| TemplateError::Io {
            what: "removing",
            path: dir,
            source,
        })?;
        let store = self.builder.store();
        let _ = store.remove_image(&format!("bulkhead-template/{}:latest", t.built.name));
        // Running sandboxes (forced removal) keep their layers until the next removal.
        let keep: Vec<_> = self
            .list()
            .iter()
            .flat_map(|o| o.built.layers.iter().map(|l| l.diff_id.clone()))
            .chain(if count > 0 {
                t.built.layers.iter().map(|l| l.diff_id.clone()).collect()
            } else {
                Vec::new()
            })
            .collect();
        if self.builder.busy() {
            tracing::info!("a build is running: unused layers are freed at the next removal");
            return Ok(0);
        }
        Ok(store.gc(&keep).unwrap_or(0))
    }
}

impl Templates {
    /// Removes image `name` from the store and frees what no image or template uses.
    ///
    /// # Errors
    /// A store failure.
    pub fn remove_image(&self, name: &str) -> Result<bool, TemplateError> {
        let store = self.builder.store();
        let io = |e: bulkhead_builder::store::StoreError| TemplateError::Io {
            what: "removing the image",
            path: store.root().to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        };
        let removed = store.remove_image(name).map_err(io)?;
        if removed && !self.builder.busy() {
            let keep: Vec<_> = self
                .list()
                .iter()
                .flat_map(|o| o.built.layers.iter().map(|l| l.diff_id.clone()))
                .collect();
            store.gc(&keep).map_err(io)?;
        }
        Ok(removed)
    }
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Passes every event on to `events` and appends it, as the client shows it, to `log`.
fn tee_log(events: EventSink, log: Arc<std::sync::Mutex<String>>) -> EventSink {
    use bulkhead_builder::build::BuildEvent as E;
    Arc::new(move |e: E| {
        let line = match &e {
            E::Step {
                stage,
                index,
                total,
                text,
            } => Some(format!("[{stage} {index}/{total}] {text}")),
            E::Cached { index } => Some(format!("[{index}] cached")),
            E::Done { .. } => None,
            E::Output { line } => Some(format!("| {line}")),
            E::Note { message } => Some(format!("note: {message}")),
        };
        if let Some(line) = line {
            let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
            if log.len() + line.len() < BUILD_LOG_MAX {
                log.push_str(&line);
                log.push('\n');
            }
        }
        events(e);
    })
}

/// Writes `data` to `path` created with mode 0600 (never readable by others, even briefly).
fn write_private(path: &Path, data: &[u8]) -> Result<(), TemplateError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |what: &'static str| {
        let path = path.to_path_buf();
        move |source| TemplateError::Io { what, path, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("creating the directory of"))?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("creating"))?;
    f.write_all(data).map_err(io("writing"))?;
    std::fs::rename(&tmp, path).map_err(io("renaming into"))
}

fn read_record(path: &Path) -> Result<StoredTemplate, TemplateError> {
    let text = std::fs::read(path).map_err(|source| TemplateError::Io {
        what: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|_| TemplateError::Corrupt(path.to_path_buf()))
}

pub(crate) fn write_record(dir: &Path, t: &StoredTemplate) -> Result<(), TemplateError> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| TemplateError::Io { what, path, source }
    };
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let path = dir.join("template.json");
    let tmp = dir.join(".template.json.tmp");
    let json = serde_json::to_vec_pretty(t).map_err(|e| TemplateError::Io {
        what: "encoding",
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&tmp, json).map_err(io("writing", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("renaming into", &path))
}

/// The sandbox network for build sandboxes: internet egress under the server's firewall.
pub struct BuildNet(pub crate::manager::NetworkSettings);

impl bulkhead_builder::build::BuildNetwork for BuildNet {
    fn attach(&self, sb: &bulkhead_runtime::Sandbox) -> Result<(), String> {
        let policy = bulkhead_net::Policy {
            internet: true,
            ..bulkhead_net::Policy::default()
        };
        let net = &self.0.network;
        let a = net
            .attach(sb.id(), sb.init_pid(), policy)
            .map_err(|e| e.to_string())?;
        if let Err(e) = net.write_resolv_conf(sb.id(), sb.init_pid(), sb.root_host_id(), &a) {
            net.detach(sb.id());
            return Err(e.to_string());
        }
        Ok(())
    }
    fn detach(&self, id: &str) {
        self.0.network.detach(id);
    }
}
