//! The stage loop: FROM resolution, ARG scoping, and the instructions that only change the
//! image config. RUN and COPY are in their own files; the snapshot in `snapshot.rs`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bulkhead_runtime::Runtime;

use super::cache::{Key, StepCache};
use super::{
    BuildError, BuildEvent, BuildNetwork, BuildRequest, BuilderDirs, BuiltTemplate, EventSink,
};
use crate::dockerfile::{self, Command, Instruction, Run, Stage, Step};
use crate::store::{History, ImageConfig, ImageStore, LayerInfo};

/// Builds templates. One per server; builds of different templates run at once.
pub struct Builder {
    pub(super) runtime: Runtime,
    pub(super) store: Arc<ImageStore>,
    pub(super) dirs: BuilderDirs,
    pub(super) network: Option<Arc<dyn BuildNetwork>>,
    pub(super) cache: StepCache,
    building: Mutex<HashSet<String>>,
    /// Images imported from a host directory the first time a FROM names them.
    pub(super) local_images: Vec<(String, PathBuf)>,
}

/// A stage as far as it got: its layers, config and cache key.
#[derive(Clone)]
pub(super) struct StageOut {
    pub name: Option<String>,
    pub layers: Vec<LayerInfo>,
    pub config: ImageConfig,
    pub key: Key,
    pub base: String,
}

/// What every step of one build shares.
pub(super) struct Ctx<'a> {
    pub req: &'a BuildRequest,
    pub events: &'a EventSink,
    /// This build's scratch directory.
    pub work: PathBuf,
    pub build_id: String,
    pub stages: Vec<StageOut>,
    pub steps_run: usize,
    pub steps_cached: usize,
    pub secrets_used: BTreeSet<String>,
    /// The Dockerfile's escape character (`# escape=`).
    pub escape: char,
}

impl Ctx<'_> {
    pub(super) fn note(&self, message: impl Into<String>) {
        (self.events)(BuildEvent::Note {
            message: message.into(),
        });
    }
    pub(super) fn at(&self, step: &Step) -> String {
        format!("{}:{}", self.req.template.dockerfile_name, step.loc.line)
    }
}

/// Build args and ENV as the expansion of a value sees them.
pub(super) struct Scope {
    /// ARGs declared in this stage, with their values.
    pub args: BTreeMap<String, String>,
}

impl Scope {
    /// The value of `$name`: ENV first, then ARG (Docker's order).
    pub(super) fn lookup(&self, config: &ImageConfig, name: &str) -> Option<String> {
        env_get(&config.env, name).or_else(|| self.args.get(name).cloned())
    }
}

pub(super) fn env_get(env: &[String], name: &str) -> Option<String> {
    env.iter().rev().find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

pub(super) fn env_set(env: &mut Vec<String>, name: &str, value: &str) {
    env.retain(|kv| kv.split_once('=').map(|(k, _)| k) != Some(name));
    env.push(format!("{name}={value}"));
}

pub(super) fn history(created_by: String, empty_layer: bool) -> History {
    History {
        created: crate::build::executor::now_rfc3339(),
        created_by,
        empty_layer,
        comment: Some("buildkit.dockerfile.v0".into()),
    }
}

pub(super) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Names that say a value is a credential.
const CREDENTIAL_WORDS: &[&str] = &["SECRET", "PASSWORD", "TOKEN", "ACCESS_KEY", "PRIVATE"];

/// Whether a build arg looks like a credential (by name, or an AWS access key id by value).
pub(super) fn looks_like_credential(name: &str, value: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let aws_key = value.len() == 20
        && (value.starts_with("AKIA") || value.starts_with("ASIA"))
        && value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    aws_key || (!value.is_empty() && CREDENTIAL_WORDS.iter().any(|w| upper.contains(w)))
}

impl Builder {
    /// A builder over `store`, running build sandboxes with `runtime`.
    ///
    /// # Errors
    /// When a directory cannot be created.
    pub fn new(
        runtime: Runtime,
        store: Arc<ImageStore>,
        dirs: BuilderDirs,
        network: Option<Arc<dyn BuildNetwork>>,
    ) -> Result<Self, BuildError> {
        for d in [&dirs.work, &dirs.cache, &dirs.registry] {
            std::fs::create_dir_all(d).map_err(BuildError::io("creating", d))?;
        }
        // Whatever a build that died left behind (step layers, secret files).
        for d in [&dirs.work, &dirs.secrets] {
            if let Ok(rd) = std::fs::read_dir(d) {
                for e in rd.flatten() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let cache = StepCache::open(&dirs.cache)?;
        Ok(Self {
            runtime,
            store,
            dirs,
            network,
            cache,
            building: Mutex::new(HashSet::new()),
            local_images: Vec::new(),
        })
    }

    /// Makes `FROM name` import the root filesystem directory `dir` into the store the
    /// first time a build names it (the repo's own root filesystems, so that FROM works on
    /// a machine that reaches no registry).
    #[must_use]
    pub fn with_local_image(mut self, name: &str, dir: PathBuf) -> Self {
        self.local_images.push((name.to_string(), dir));
        self
    }

    /// Whether a build is running (its layers are referenced by no image yet, so nothing
    /// may be garbage-collected meanwhile).
    pub fn busy(&self) -> bool {
        !self
            .building
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// The image store.
    pub fn store(&self) -> &Arc<ImageStore> {
        &self.store
    }

    /// Builds `req`. Blocking (minutes for a real image); events go to `events` as it goes.
    ///
    /// # Errors
    /// [`BuildError`] naming the step; nothing is left registered or mounted.
    pub fn build(&self, req: BuildRequest, events: EventSink) -> Result<BuiltTemplate, BuildError> {
        let name = req.name.clone();
        {
            let mut b = self.building.lock().unwrap_or_else(|p| p.into_inner());
            if !b.insert(name.clone()) {
                return Err(BuildError::Busy(name));
            }
        }
        let build_id = format!("{:016x}", rand::random::<u64>());
        let work = self.dirs.work.join(&build_id);
        let result = std::fs::create_dir_all(&work)
            .map_err(BuildError::io("creating", &work))
            .and_then(|()| {
                let mut ctx = Ctx {
                    req: &req,
                    events: &events,
                    work: work.clone(),
                    build_id,
                    stages: Vec::new(),
                    steps_run: 0,
                    steps_cached: 0,
                    secrets_used: BTreeSet::new(),
                    escape: '\\',
                };
                self.build_in(&mut ctx)
            });
        let _ = std::fs::remove_dir_all(&work);
        self.building
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name);
        result
    }

    fn build_in(&self, ctx: &mut Ctx<'_>) -> Result<BuiltTemplate, BuildError> {
        let td = &ctx.req.template;
        for k in &td.ignored_keys {
            ctx.note(format!(
                "e2b.toml: {k} is not used by Bulkhead and is ignored"
            ));
        }
        let df = dockerfile::parse(&td.dockerfile_name, &td.dockerfile_text)?;
        ctx.escape = df.escape;
        for (k, v) in &ctx.req.args {
            if looks_like_credential(k, v) {
                ctx.note(format!(
                    "warning: build arg {k} looks like a credential: build args are kept in the image history, where anyone with the image reads them; pass it with --secret id={k},env={k} and RUN --mount=type=secret,id={k} instead"
                ));
            }
        }
        let mut consumed: BTreeSet<String> = BTreeSet::new();
        // ARGs before the first FROM: usable in FROM lines, and imported by a stage's
        // `ARG NAME` without a default.
        let mut meta: BTreeMap<String, String> = BTreeMap::new();
        for a in &df.global_args {
            let v = self.arg_value(ctx, &a.name, a.default.as_deref(), &meta)?;
            consumed.insert(a.name.clone());
            if let Some(v) = v {
                meta.insert(a.name.clone(), v);
            }
        }
        let total: usize = df.stages.iter().map(|s| s.steps.len() + 1).sum();
        let mut index = 0;
        for stage in &df.stages {
            let out = self.run_stage(ctx, stage, &meta, &mut consumed, &mut index, total)?;
            ctx.stages.push(out);
        }
        let unused: Vec<&str> = ctx
            .req
            .args
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !consumed.contains(*k))
            .collect();
        if !unused.is_empty() {
            ctx.note(format!(
                "warning: build args {} were given but no ARG declares them",
                unused.join(", ")
            ));
        }
        for id in ctx.req.secrets.keys() {
            if !ctx.secrets_used.contains(id) {
                ctx.note(format!("secret {id:?} was given but no RUN step mounts it"));
            }
        }
        let Some(last) = ctx.stages.last().cloned() else {
            return Err(BuildError::Step {
                at: td.dockerfile_name.clone(),
                message: "the Dockerfile has no FROM".into(),
            });
        };
        let mut layers = last.layers.clone();
        let mut config = last.config.clone();
        let mut service = false;
        if let Some(cmd) = &td.config.start_cmd {
            let snap = self.snapshot(ctx, &last, cmd)?;
            service = snap.service;
            if let Some(l) = snap.layer {
                layers.push(l);
            }
            config.history.push(history(
                format!("start_cmd {cmd} (snapshot)"),
                layers.len() == last.layers.len(),
            ));
        }
        let image = self.store.put_image(
            &format!("bulkhead-template/{}:latest", ctx.req.name),
            &config,
            &layers,
            Some(last.base.clone()),
        )?;
        Ok(BuiltTemplate {
            name: ctx.req.name.clone(),
            layers,
            config,
            base: last.base,
            start_cmd: td.config.start_cmd.clone(),
            ready_cmd: td.config.ready_cmd.clone(),
            service,
            cpu_count: td.config.cpu_count,
            memory_mb: td.config.memory_mb,
            manifest_digest: image.manifest_digest,
            steps_run: ctx.steps_run,
            steps_cached: ctx.steps_cached,
        })
    }

    /// A declared ARG's value: the build arg of that name, else its default (expanded), else
    /// the value `inherited` from the ARGs before FROM.
    fn arg_value(
        &self,
        ctx: &Ctx<'_>,
        name: &str,
        default: Option<&str>,
        inherited: &BTreeMap<String, String>,
    ) -> Result<Option<String>, BuildError> {
        if let Some((_, v)) = ctx.req.args.iter().rev().find(|(k, _)| k == name) {
            return Ok(Some(v.clone()));
        }
        match default {
            Some(d) => {
                dockerfile::expand_with_escape(d, ctx.escape, &|k| inherited.get(k).cloned())
                    .map(Some)
                    .map_err(|e| BuildError::Expand {
                        at: ctx.req.template.dockerfile_name.clone(),
                        message: e.to_string(),
                    })
            }
            None => Ok(inherited.get(name).cloned()),
        }
    }

    fn run_stage(
        &self,
        ctx: &mut Ctx<'_>,
        stage: &Stage,
        meta: &BTreeMap<String, String>,
        consumed: &mut BTreeSet<String>,
        index: &mut usize,
        total: usize,
    ) -> Result<StageOut, BuildError> {
        let label = stage
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{}", stage.index));
        *index += 1;
        let from_text = format!("FROM {}", stage.base);
        (ctx.events)(BuildEvent::Step {
            stage: label.clone(),
            index: *index,
            total,
            text: from_text,
        });
        let t0 = Instant::now();
        let base =
            dockerfile::expand_with_escape(&stage.base, ctx.escape, &|k| meta.get(k).cloned())
                .map_err(|e| BuildError::Expand {
                    at: format!("{}:{}", ctx.req.template.dockerfile_name, stage.loc.line),
                    message: e.to_string(),
                })?;
        let mut out = self.resolve_base(ctx, &base, stage)?;
        out.name = stage.name.clone();
        (ctx.events)(BuildEvent::Done {
            index: *index,
            layer_bytes: 0,
            millis: t0.elapsed().as_millis() as u64,
        });
        let mut scope = Scope {
            args: BTreeMap::new(),
        };
        for step in &stage.steps {
            *index += 1;
            (ctx.events)(BuildEvent::Step {
                stage: label.clone(),
                index: *index,
                total,
                text: step.text.clone(),
            });
            let t0 = Instant::now();
            let before = out.layers.len();
            let cached_before = ctx.steps_cached;
            self.step(ctx, step, &mut out, &mut scope, meta, consumed)?;
            if ctx.steps_cached > cached_before {
                (ctx.events)(BuildEvent::Cached { index: *index });
            } else {
                let bytes = out.layers[before..].iter().map(|l| l.size).sum();
                (ctx.events)(BuildEvent::Done {
                    index: *index,
                    layer_bytes: bytes,
                    millis: t0.elapsed().as_millis() as u64,
                });
            }
        }
        Ok(out)
    }

    fn step(
        &self,
        ctx: &mut Ctx<'_>,
        step: &Step,
        out: &mut StageOut,
        scope: &mut Scope,
        meta: &BTreeMap<String, String>,
        consumed: &mut BTreeSet<String>,
    ) -> Result<(), BuildError> {
        let at = ctx.at(step);
        let escape = ctx.escape;
        let expand = |word: &str, out: &StageOut, scope: &Scope| {
            dockerfile::expand_with_escape(word, escape, &|k| scope.lookup(&out.config, k)).map_err(
                |e| BuildError::Expand {
                    at: at.clone(),
                    message: e.to_string(),
                },
            )
        };
        match &step.instr {
            Instruction::Arg(decls) => {
                for a in decls {
                    consumed.insert(a.name.clone());
                    let inherited: BTreeMap<String, String> = meta
                        .iter()
                        .chain(scope.args.iter())
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    let v = self
                        .arg_value(ctx, &a.name, a.default.as_deref(), &inherited)?
                        .unwrap_or_default();
                    out.key = out.key.then(&[b"ARG", a.name.as_bytes(), v.as_bytes()]);
                    scope.args.insert(a.name.clone(), v);
                }
            }
            Instruction::Env(pairs) => {
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    let v = expand(v, out, scope)?;
                    env_set(&mut out.config.env, k, &v);
                    shown.push(format!("{k}={v}"));
                }
                let text = format!("ENV {}", shown.join(" "));
                out.key = out.key.then(&[text.as_bytes()]);
                out.config.history.push(history(text, true));
            }
            Instruction::Label(pairs) => {
                for (k, v) in pairs {
                    let v = expand(v, out, scope)?;
                    out.config.labels.insert(k.clone(), v);
                }
                out.config.history.push(history(step.text.clone(), true));
            }
            Instruction::Workdir(w) => {
                let w = expand(w, out, scope)?;
                let base = out.config.workdir.clone().unwrap_or_else(|| "/".into());
                let dir = Path::new(&base).join(&w);
                let dir = format!("/{}", super::layers::relative(&dir).display());
                out.config.workdir = Some(dir.clone());
                let text = format!("WORKDIR {dir}");
                out.key = out.key.then(&[text.as_bytes()]);
                let made = self.ensure_dir(ctx, out, &dir)?;
                out.config.history.push(history(text, !made));
            }
            Instruction::User(u) => {
                let u = expand(u, out, scope)?;
                out.config.user = Some(u.clone());
                let text = format!("USER {u}");
                out.key = out.key.then(&[text.as_bytes()]);
                out.config.history.push(history(text, true));
            }
            Instruction::Shell(argv) => {
                out.config.shell = Some(argv.clone());
                out.key = out.key.then(&[step.text.as_bytes()]);
                out.config.history.push(history(step.text.clone(), true));
            }
            Instruction::Cmd(c) => {
                out.config.cmd = Some(command_argv(&out.config, c));
                out.config.history.push(history(step.text.clone(), true));
            }
            Instruction::Entrypoint(c) => {
                out.config.entrypoint = Some(command_argv(&out.config, c));
                out.config.history.push(history(step.text.clone(), true));
            }
            Instruction::Expose(ports) => {
                for p in ports {
                    let p = expand(p, out, scope)?;
                    let p = if p.contains('/') {
                        p
                    } else {
                        format!("{p}/tcp")
                    };
                    if !out.config.exposed_ports.contains(&p) {
                        out.config.exposed_ports.push(p);
                    }
                }
                out.config.history.push(history(step.text.clone(), true));
            }
            Instruction::Volume(v) => {
                for p in v {
                    let p = expand(p, out, scope)?;
                    out.config.volumes.push(p);
                }
                out.config.history.push(history(step.text.clone(), true));
            }
            Instruction::StopSignal(s) => {
                out.config.stop_signal = Some(expand(s, out, scope)?);
                out.config.history.push(history(step.text.clone(), true));
            }
            Instruction::Run(run) => {
                // `--mount` values may name ARG and ENV values of this step.
                let mounts = run
                    .expanded_mounts(&|raw| {
                        dockerfile::expand_with_escape(raw, escape, &|k| {
                            scope.lookup(&out.config, k)
                        })
                        .map_err(|e| e.to_string())
                    })
                    .map_err(|message| BuildError::Expand {
                        at: at.clone(),
                        message,
                    })?;
                let run = Run {
                    mounts,
                    ..run.clone()
                };
                self.run(ctx, step, &run, out, scope)?
            }
            Instruction::Copy(copy) => self.copy(ctx, step, copy, out, scope)?,
        }
        Ok(())
    }
}

/// CMD/ENTRYPOINT as an argv: the exec form as is, the shell form under the image's shell.
pub(super) fn command_argv(config: &ImageConfig, c: &Command) -> Vec<String> {
    match c {
        Command::Exec(argv) => argv.clone(),
        Command::Shell(s) => {
            let mut argv = shell_of(config);
            argv.push(s.clone());
            argv
        }
    }
}

/// The image's `SHELL`, or `/bin/sh -c`.
pub(super) fn shell_of(config: &ImageConfig) -> Vec<String> {
    config
        .shell
        .clone()
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_looking_args_are_recognised() {
        assert!(looks_like_credential("AWS_SECRET_ACCESS_KEY", "x"));
        assert!(looks_like_credential("ANYTHING", "AKIAIOSFODNN7EXAMPLE"));
        assert!(!looks_like_credential("AWS_REGION", "us-east-1"));
        assert!(!looks_like_credential("S3_BUCKET_NAME", "bucket"));
    }

    #[test]
    fn env_set_replaces_and_get_finds() {
        let mut env = vec!["A=1".to_string(), "PATH=/bin".to_string()];
        env_set(&mut env, "A", "2");
        assert_eq!(env_get(&env, "A").as_deref(), Some("2"));
        assert_eq!(env.len(), 2);
    }
}
