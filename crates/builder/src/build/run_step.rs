//! RUN: the command in a build sandbox of its own (the stage's layers, a writable layer on
//! the host, the sandbox network), with the step's secrets and cache mounts; its writable
//! layer becomes the step's layer. BuildKit's mount semantics: a secret is a read-only file
//! at `target` (default `/run/secrets/<id>`) or, with `env=` and no target, only an
//! environment variable; a missing secret fails the step when `required`, else the step
//! runs without it; a cache directory persists between builds, is never part of a layer or
//! a cache key, and `sharing=locked` runs one step at a time on it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bulkhead_runtime::{BindMount, ExecSpec, IDS_PER_SANDBOX, SandboxSpec, Stdio};
use nix::fcntl::{Flock, FlockArg};

use super::cache::Entry;
use super::executor::{Ctx, Scope, StageOut, env_get, history, shell_of};
use super::secret::Redactor;
use super::{BuildError, BuildEvent, Builder};
use crate::dockerfile::{CacheMount, Command, Run, RunMount, Sharing, Step};
use crate::store::{CaptureOptions, ImageConfig};

/// Files the runtime writes into every sandbox; Docker does not keep them in layers either.
pub(super) const RUNTIME_FILES: [&str; 3] = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];

/// Mount points the runtime creates when an image lacks them, and the directories that
/// writing [`RUNTIME_FILES`] and mount points copies up into the writable layer: once those
/// are left out, an empty one there is no change of the image.
pub(super) const RUNTIME_MOUNT_POINTS: [&str; 6] =
    ["/proc", "/sys", "/dev", "/tmp", "/etc", "/run"];

/// Lines of output kept for the error of a failed step.
const TAIL: usize = 20;

/// The argv of a RUN and how the history shows it.
pub(super) fn run_argv(config: &ImageConfig, run: &Run) -> Vec<String> {
    match &run.command {
        Command::Exec(argv) => argv.clone(),
        Command::Shell(cmd) => {
            let mut argv = shell_of(config);
            if run.heredocs.is_empty() {
                argv.push(cmd.clone());
            } else if cmd.trim().is_empty() {
                // `RUN <<EOF`: the body is the script.
                argv.push(run.heredocs.iter().map(|h| h.body.as_str()).collect());
            } else {
                // `RUN python3 <<EOF`: the shell reads the here-documents itself.
                let mut script = cmd.clone();
                script.push('\n');
                for h in &run.heredocs {
                    script.push_str(&h.body);
                    if !h.body.ends_with('\n') {
                        script.push('\n');
                    }
                    script.push_str(&h.name);
                    script.push('\n');
                }
                argv.push(script);
            }
            argv
        }
    }
}

impl Builder {
    pub(super) fn run(
        &self,
        ctx: &mut Ctx<'_>,
        step: &Step,
        run: &Run,
        out: &mut StageOut,
        scope: &Scope,
    ) -> Result<(), BuildError> {
        let at = ctx.at(step);
        let argv = run_argv(&out.config, run);
        // ARGs are the command's environment too (ENV wins), but not the image's.
        let args: Vec<(String, String)> = scope
            .args
            .iter()
            .filter(|(k, _)| env_get(&out.config.env, k).is_none())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let shown_args = if args.is_empty() {
            String::new()
        } else {
            let kv: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("|{} {} ", args.len(), kv.join(" "))
        };
        let created_by = format!("RUN {shown_args}{} # buildkit", argv.join(" "));
        let mut parts: Vec<Vec<u8>> = vec![
            b"RUN".to_vec(),
            step.text.clone().into_bytes(),
            created_by.clone().into_bytes(),
            out.config.env.join("\n").into_bytes(),
            out.config.user.clone().unwrap_or_default().into_bytes(),
            out.config.workdir.clone().unwrap_or_default().into_bytes(),
        ];
        for m in &run.mounts {
            parts.push(match m {
                RunMount::Secret(s) => format!(
                    "secret id={} target={:?} env={:?} mode={:o} uid={} gid={}",
                    s.id, s.target, s.env, s.mode, s.uid, s.gid
                )
                .into_bytes(),
                RunMount::Cache(c) => {
                    format!("cache target={} uid={} gid={}", c.target, c.uid, c.gid).into_bytes()
                }
            });
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let key = out.key.then(&refs);
        if !ctx.req.no_cache
            && let Some(hit) = self.cache.get(&key, &self.store)
        {
            ctx.steps_cached += 1;
            out.key = key;
            let empty = hit.layer.is_none();
            out.layers.extend(hit.layer);
            out.config.history.push(history(created_by, empty));
            return Ok(());
        }
        let layer = self.run_in_sandbox(ctx, step, run, out, &argv, &args, &at)?;
        self.cache.put(
            &key,
            &Entry {
                layer: layer.clone(),
            },
        )?;
        ctx.steps_run += 1;
        out.key = key;
        let empty = layer.is_none();
        out.layers.extend(layer);
        out.config.history.push(history(created_by, empty));
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn run_in_sandbox(
        &self,
        ctx: &mut Ctx<'_>,
        step: &Step,
        run: &Run,
        out: &StageOut,
        argv: &[String],
        args: &[(String, String)],
        at: &str,
    ) -> Result<Option<crate::store::LayerInfo>, BuildError> {
        let n = step.loc.line;
        let step_dir = ctx
            .work
            .join(format!("run-{n}-{:08x}", rand::random::<u32>()));
        let secrets_dir = self.dirs.secrets.join(&ctx.build_id).join(format!("{n}"));
        let result = self.run_with_mounts(ctx, run, out, argv, args, at, &step_dir, &secrets_dir);
        let _ = std::fs::remove_dir_all(&secrets_dir);
        let r = result?;
        let _ = std::fs::remove_dir_all(&step_dir);
        Ok(r)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_with_mounts(
        &self,
        ctx: &mut Ctx<'_>,
        run: &Run,
        out: &StageOut,
        argv: &[String],
        args: &[(String, String)],
        at: &str,
        step_dir: &Path,
        secrets_dir: &Path,
    ) -> Result<Option<crate::store::LayerInfo>, BuildError> {
        std::fs::create_dir_all(step_dir).map_err(BuildError::io("creating", step_dir))?;
        let mut binds = Vec::new();
        let mut env: Vec<(String, String)> = out
            .config
            .env
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.extend(args.iter().cloned());
        // Secret files get their owner once the sandbox's ids are known.
        let mut owned: Vec<(PathBuf, u32, u32)> = Vec::new();
        let mut values: Vec<&[u8]> = Vec::new();
        let mut caches: Vec<CacheDir> = Vec::new();
        let mut prune: Vec<PathBuf> = RUNTIME_MOUNT_POINTS.iter().map(PathBuf::from).collect();
        for (i, m) in run.mounts.iter().enumerate() {
            match m {
                RunMount::Secret(s) => {
                    let Some(secret) = ctx.req.secrets.get(&s.id) else {
                        if s.required {
                            return Err(BuildError::Step {
                                at: at.to_string(),
                                message: format!(
                                    "secret {:?} is required by this step but was not given: pass --secret id={},src=FILE or --secret id={},env=VAR",
                                    s.id, s.id, s.id
                                ),
                            });
                        }
                        ctx.note(format!(
                            "{at}: secret {:?} was not given; the step runs without it",
                            s.id
                        ));
                        continue;
                    };
                    ctx.secrets_used.insert(s.id.clone());
                    values.push(secret.expose());
                    if let Some(var) = &s.env {
                        let v = String::from_utf8_lossy(secret.expose()).into_owned();
                        env.push((var.clone(), v));
                    }
                    let target = match (&s.target, &s.env) {
                        (Some(t), _) => Some(t.clone()),
                        (None, Some(_)) => None,
                        (None, None) => Some(format!("/run/secrets/{}", s.id)),
                    };
                    if let Some(target) = target {
                        std::fs::create_dir_all(secrets_dir)
                            .and_then(|()| {
                                std::fs::set_permissions(
                                    secrets_dir,
                                    std::fs::Permissions::from_mode(0o700),
                                )
                            })
                            .map_err(BuildError::io("creating", secrets_dir))?;
                        let file = secrets_dir.join(i.to_string());
                        std::fs::write(&file, secret.expose())
                            .and_then(|()| {
                                std::fs::set_permissions(
                                    &file,
                                    std::fs::Permissions::from_mode(s.mode & 0o7777),
                                )
                            })
                            .map_err(BuildError::io("writing the secret file", &file))?;
                        owned.push((file.clone(), s.uid, s.gid));
                        prune.push(PathBuf::from(&target));
                        binds.push(BindMount {
                            source: file,
                            target: PathBuf::from(target),
                            read_only: true,
                            idmap: false,
                        });
                    }
                }
                RunMount::Cache(c) => {
                    let dir = self.cache_dir(c)?;
                    prune.push(PathBuf::from(&c.target));
                    binds.push(BindMount {
                        source: dir.path.clone(),
                        target: PathBuf::from(&c.target),
                        read_only: c.readonly,
                        idmap: false,
                    });
                    caches.push(dir);
                }
            }
        }
        let redactor = Arc::new(Redactor::new(values.iter().copied()));
        let layers = out
            .layers
            .iter()
            .map(|l| self.store.layer_dir(&l.diff_id))
            .collect();
        let spec = SandboxSpec {
            id: format!("build{:016x}", rand::random::<u64>()),
            layers,
            limits: ctx.req.limits.clone(),
            binds,
            writable_dir: Some(step_dir.to_path_buf()),
        };
        let sandbox_err = |message: String| BuildError::Sandbox {
            at: at.to_string(),
            message,
        };
        let sb = self
            .runtime
            .create(spec)
            .map_err(|e| sandbox_err(e.to_string()))?;
        let root = sb.root_host_id();
        let outcome = (|| {
            for (file, uid, gid) in &owned {
                std::os::unix::fs::lchown(file, Some(root + uid), Some(root + gid))
                    .map_err(BuildError::io("giving the secret file its owner", file))?;
            }
            for c in &caches {
                shift_tree(&c.path, root, true)
                    .map_err(BuildError::io("preparing the cache directory", &c.path))?;
            }
            if let Some(net) = &self.network {
                net.attach(&sb).map_err(sandbox_err)?;
            }
            let exec = ExecSpec {
                argv: argv.to_vec(),
                env: env.clone(),
                cwd: out.config.workdir.clone(),
                user: out.config.user.clone(),
                stdio: Stdio::Pipes { stdin: false },
                detach: false,
            };
            let mut p = sb.exec(exec).map_err(|e| sandbox_err(e.to_string()))?;
            let tail = Arc::new(Mutex::new(VecDeque::new()));
            let readers: Vec<_> = [p.stdout.take(), p.stderr.take()]
                .into_iter()
                .flatten()
                .map(|f| forward(f, ctx.events.clone(), redactor.clone(), tail.clone()))
                .collect();
            let status = p.wait().map_err(|e| sandbox_err(e.to_string()));
            for r in readers {
                let _ = r.join();
            }
            let status = status?;
            if status.code != Some(0) {
                let last = tail.lock().unwrap_or_else(|p| p.into_inner());
                return Err(BuildError::RunFailed {
                    at: at.to_string(),
                    command: argv.last().cloned().unwrap_or_default(),
                    status: match (status.code, status.signal) {
                        (Some(c), _) => format!("status {c}"),
                        (None, Some(s)) => format!("signal {s}"),
                        _ => "an unknown status".into(),
                    },
                    last_lines: last.iter().cloned().collect(),
                });
            }
            Ok(())
        })();
        let _ = sb.destroy();
        if let Some(net) = &self.network {
            net.detach(sb.id());
        }
        for c in &caches {
            let _ = shift_tree(&c.path, root, false);
        }
        drop(caches);
        outcome?;
        drop_runtime_files(&step_dir.join("upper"));
        let layer = self.store.capture_upper(
            &step_dir.join("upper"),
            &CaptureOptions {
                uid_shift: root,
                id_count: IDS_PER_SANDBOX,
                exclude: RUNTIME_FILES.iter().map(PathBuf::from).collect(),
                prune_empty: prune,
            },
        )?;
        if let Some(l) = &layer {
            self.refuse_secrets_in(l, &redactor, ctx, at)?;
        }
        Ok(layer)
    }

    /// Fails when the layer's blob holds a secret value (and removes the layer).
    pub(super) fn refuse_secrets_in(
        &self,
        layer: &crate::store::LayerInfo,
        redactor: &Redactor,
        ctx: &Ctx<'_>,
        at: &str,
    ) -> Result<(), BuildError> {
        if redactor.is_empty() {
            return Ok(());
        }
        let blob = self.store.blob_path(&layer.digest);
        let found = contains_any(&blob, redactor).map_err(BuildError::io("scanning", &blob))?;
        if !found {
            return Ok(());
        }
        let id = ctx
            .req
            .secrets
            .iter()
            .find(|(_, s)| Redactor::new([s.expose()]).found_in_file(&blob))
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| "?".into());
        let _ = std::fs::remove_file(&blob);
        let _ = std::fs::remove_dir_all(self.store.layer_dir(&layer.diff_id));
        Err(BuildError::SecretInLayer {
            at: at.to_string(),
            id,
        })
    }

    fn cache_dir(&self, c: &CacheMount) -> Result<CacheDir, BuildError> {
        use sha2::{Digest as _, Sha256};
        let id = c.id.clone().unwrap_or_else(|| c.target.clone());
        let h: String = Sha256::digest(id.as_bytes())
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        let base = self.dirs.cache.join("mounts");
        std::fs::create_dir_all(&base).map_err(BuildError::io("creating", &base))?;
        let path = base.join(&h);
        if !path.exists() {
            std::fs::create_dir(&path)
                .and_then(|()| {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(c.mode))
                })
                .and_then(|()| std::os::unix::fs::lchown(&path, Some(c.uid), Some(c.gid)))
                .map_err(BuildError::io("creating the cache directory", &path))?;
        }
        let lock_path = base.join(format!("{h}.lock"));
        let lock = match c.sharing {
            Sharing::Locked => {
                let f = std::fs::File::create(&lock_path)
                    .map_err(BuildError::io("creating", &lock_path))?;
                Some(
                    Flock::lock(f, FlockArg::LockExclusive)
                        .map_err(|(_, e)| BuildError::io("locking", &lock_path)(e.into()))?,
                )
            }
            Sharing::Shared | Sharing::Private => None,
        };
        Ok(CacheDir { path, _lock: lock })
    }
}

/// A cache mount's directory, locked for the step when `sharing=locked`. Its files are kept
/// with image ids (host uid 0 = sandbox root) and shifted to the sandbox's for the step.
struct CacheDir {
    path: PathBuf,
    _lock: Option<Flock<std::fs::File>>,
}

/// Removes what the runtime wrote into a writable layer ([`RUNTIME_FILES`]) before it is
/// captured, so that the directories holding them are seen empty when nothing else changed.
pub(super) fn drop_runtime_files(upper: &Path) {
    for f in RUNTIME_FILES {
        let p = upper.join(f.trim_start_matches('/'));
        if p.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// Adds (`up`) or removes `shift` from the owner of every entry under `dir`.
fn shift_tree(dir: &Path, shift: u32, up: bool) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = entry.map_err(std::io::Error::other)?;
        let m = entry.path().symlink_metadata()?;
        let (uid, gid) = if up {
            (m.uid().saturating_add(shift), m.gid().saturating_add(shift))
        } else {
            (m.uid().saturating_sub(shift), m.gid().saturating_sub(shift))
        };
        std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))?;
    }
    Ok(())
}

/// Whether the file holds any value of `redactor` (read in blocks that overlap by the
/// longest value, so no occurrence is split unseen).
fn contains_any(path: &Path, redactor: &Redactor) -> std::io::Result<bool> {
    let mut f = std::fs::File::open(path)?;
    let keep = redactor.longest().saturating_sub(1);
    let mut buf = vec![0u8; 1 << 20];
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(false);
        }
        carry.extend_from_slice(&buf[..n]);
        if redactor.found_in(&carry) {
            return Ok(true);
        }
        let start = carry.len().saturating_sub(keep);
        carry.drain(..start);
    }
}

impl Redactor {
    /// Whether the file at `path` holds a value.
    pub(super) fn found_in_file(&self, path: &Path) -> bool {
        contains_any(path, self).unwrap_or(false)
    }
}

/// Forwards a process's output as redacted lines, keeping the last [`TAIL`].
fn forward(
    f: std::fs::File,
    events: super::EventSink,
    redactor: Arc<Redactor>,
    tail: Arc<Mutex<VecDeque<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(f);
        let mut line = Vec::new();
        loop {
            line.clear();
            // A line longer than 64 KiB is cut there (and still redacted whole up to it).
            match r.by_ref().take(64 * 1024).read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let clean = redactor.redact(line.strip_suffix(b"\n").unwrap_or(&line));
            let text = String::from_utf8_lossy(&clean).into_owned();
            {
                let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                if t.len() == TAIL {
                    t.pop_front();
                }
                t.push_back(text.clone());
            }
            events(BuildEvent::Output { line: text });
        }
    })
}
