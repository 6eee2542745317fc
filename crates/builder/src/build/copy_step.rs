//! COPY, ADD and WORKDIR: files written straight into a new layer directory (no sandbox),
//! with Docker's rules: sources relative to the context (or an earlier stage with
//! `--from`), a directory source copies its contents, a destination ending in `/` (or
//! several sources, or an existing directory) is a directory, files are root's unless
//! `--chown`, modes are kept unless `--chmod`, mtimes are kept. Directories the layer must
//! create on the way take their mode and owner from the image, so that a COPY into
//! `/home/user` does not give it to root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::cache::Entry;
use super::executor::{Ctx, Scope, StageOut, history};
use super::layers::{lookup, relative, with_merged_view};
use super::{BuildError, Builder};
use crate::dockerfile::{self, Copy, Step};
use crate::store::{CaptureOptions, Compression};
use crate::template_dir;

impl Builder {
    pub(super) fn copy(
        &self,
        ctx: &mut Ctx<'_>,
        step: &Step,
        copy: &Copy,
        out: &mut StageOut,
        scope: &Scope,
    ) -> Result<(), BuildError> {
        let at = ctx.at(step);
        let escape = ctx.escape;
        let expand = |w: &str| {
            dockerfile::expand_with_escape(w, escape, &|k| scope.lookup(&out.config, k)).map_err(
                |e| BuildError::Expand {
                    at: at.clone(),
                    message: e.to_string(),
                },
            )
        };
        let sources: Vec<String> = copy
            .sources
            .iter()
            .map(|s| expand(s))
            .collect::<Result<_, _>>()?;
        let dest_raw = expand(&copy.dest)?;
        let workdir = out.config.workdir.clone().unwrap_or_else(|| "/".into());
        let dest = Path::new("/").join(relative(&Path::new(&workdir).join(&dest_raw)));
        let chown = copy.chown.as_deref().map(&expand).transpose()?;
        let chmod = match copy.chmod.as_deref().map(&expand).transpose()? {
            Some(m) => Some(u32::from_str_radix(&m, 8).map_err(|_| BuildError::Step {
                at: at.clone(),
                message: format!("--chmod={m} is not an octal mode"),
            })?),
            None => None,
        };
        let layer_paths: Vec<PathBuf> = out
            .layers
            .iter()
            .map(|l| self.store.layer_dir(&l.diff_id))
            .collect();
        let (uid, gid) = match &chown {
            Some(spec) => resolve_owner(&layer_paths, spec).ok_or_else(|| BuildError::Step {
                at: at.clone(),
                message: format!("--chown={spec}: no such user or group in the image"),
            })?,
            None => (0, 0),
        };
        // What the result depends on: the sources' content (or the stage they come from).
        let td = &ctx.req.template;
        let (entries, from_stage) = match &copy.from {
            None => (template_dir::context_files(&td.dir, &td.ignore)?, None),
            Some(f) => {
                let name = expand(f)?.to_ascii_lowercase();
                let stage = ctx
                    .stages
                    .iter()
                    .find(|s| {
                        s.name.as_deref() == Some(name.as_str())
                            || name.parse::<usize>().ok() == Some(ctx_index(ctx, s))
                    })
                    .cloned()
                    .ok_or_else(|| BuildError::Step {
                        at: at.clone(),
                        message: format!("COPY --from={f}: no earlier stage of that name"),
                    })?;
                (Vec::new(), Some(stage))
            }
        };
        let content_hash: Vec<u8> = match &from_stage {
            None if copy.heredocs.is_empty() => {
                template_dir::hash_sources(&td.dir, &entries, &sources)?.to_vec()
            }
            None => copy
                .heredocs
                .iter()
                .flat_map(|h| [h.name.as_bytes(), h.body.as_bytes()].concat())
                .collect(),
            Some(s) => s.key.hex().into_bytes(),
        };
        let text = format!(
            "{} {}{}{} {} # buildkit",
            if copy.add { "ADD" } else { "COPY" },
            chown
                .as_ref()
                .map(|c| format!("--chown={c} "))
                .unwrap_or_default(),
            chmod.map(|m| format!("--chmod={m:o} ")).unwrap_or_default(),
            sources.join(" "),
            dest.display()
        );
        let key = out
            .key
            .then(&[text.as_bytes(), &content_hash, workdir.as_bytes()]);
        if !ctx.req.no_cache
            && let Some(hit) = self.cache.get(&key, &self.store)
        {
            ctx.steps_cached += 1;
            out.key = key;
            let empty = hit.layer.is_none();
            out.layers.extend(hit.layer);
            out.config.history.push(history(text, empty));
            return Ok(());
        }
        let layer_dir = ctx.work.join(format!(
            "copy-{}-{:08x}",
            step.loc.line,
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&layer_dir).map_err(BuildError::io("creating", &layer_dir))?;
        let several = sources.len() + copy.heredocs.len() > 1;
        let dest_is_dir = dest_raw.ends_with('/')
            || several
            || lookup(&layer_paths, &dest).is_some_and(|m| m.is_dir());
        let writer = LayerWriter {
            root: layer_dir.clone(),
            image: layer_paths.clone(),
            uid,
            gid,
            chmod,
            owner_set: chown.is_some(),
        };
        if !copy.heredocs.is_empty() {
            for h in &copy.heredocs {
                let target = if dest_is_dir {
                    dest.join(&h.name)
                } else {
                    dest.clone()
                };
                // BuildKit expands variables in an unquoted here-document's body.
                let body = if h.expand {
                    dockerfile::expand_heredoc(&h.body, &|k| scope.lookup(&out.config, k)).map_err(
                        |e| BuildError::Expand {
                            at: at.clone(),
                            message: e.to_string(),
                        },
                    )?
                } else {
                    h.body.clone()
                };
                writer
                    .write_file(&target, body.as_bytes())
                    .map_err(BuildError::io("writing", &target))?;
            }
        } else if let Some(stage) = &from_stage {
            let view_layers: Vec<PathBuf> = stage
                .layers
                .iter()
                .map(|l| self.store.layer_dir(&l.diff_id))
                .collect();
            let scratch = ctx.work.clone();
            let srcs = sources.clone();
            let dest2 = dest.clone();
            let w = writer.clone();
            with_merged_view(&view_layers, &scratch, move |root| {
                for s in &srcs {
                    let src = root.join(relative(Path::new(s)));
                    let meta = src.symlink_metadata().map_err(|e| {
                        std::io::Error::new(e.kind(), format!("COPY --from source {s}: {e}"))
                    })?;
                    let target = if meta.is_dir() || !dest_is_dir {
                        dest2.clone()
                    } else {
                        dest2.join(src.file_name().unwrap_or_default())
                    };
                    w.copy_tree(&src, &target)?;
                }
                Ok(())
            })
            .map_err(|e| BuildError::Step {
                at: at.clone(),
                message: e.to_string(),
            })?;
        } else {
            for s in &sources {
                let matched = template_dir::match_sources(&entries, s)?;
                for e in matched {
                    let src = td.dir.join(&e.rel);
                    let meta = src
                        .symlink_metadata()
                        .map_err(BuildError::io("reading", &src))?;
                    if meta.is_dir() {
                        // The directory's contents, as the context lists them (ignored
                        // files stay out).
                        writer
                            .ensure_dirs(&dest)
                            .map_err(BuildError::io("creating", &dest))?;
                        for x in entries
                            .iter()
                            .filter(|x| x.rel.starts_with(&e.rel) && x.rel != e.rel)
                        {
                            let rel = x.rel.strip_prefix(&e.rel).unwrap_or(&x.rel);
                            let target = dest.join(rel);
                            writer
                                .copy_one(&td.dir.join(&x.rel), &target)
                                .map_err(BuildError::io("copying", &target))?;
                        }
                    } else if copy.add
                        && meta.is_file()
                        && self.add_archive(&writer, &src, &dest, &at)?
                    {
                        // ADD of a local tar archive: unpacked at the destination.
                    } else {
                        let target = if dest_is_dir {
                            dest.join(e.rel.file_name().unwrap_or_default())
                        } else {
                            dest.clone()
                        };
                        writer
                            .copy_one(&src, &target)
                            .map_err(BuildError::io("copying", &target))?;
                    }
                }
            }
        }
        let layer = self.store.capture_upper(
            &layer_dir,
            &CaptureOptions {
                uid_shift: 0,
                id_count: bulkhead_runtime::IDS_PER_SANDBOX,
                exclude: Vec::new(),
                prune_empty: Vec::new(),
            },
        )?;
        let _ = std::fs::remove_dir_all(&layer_dir);
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
        out.config.history.push(history(text, empty));
        Ok(())
    }

    /// ADD of a local file that is a tar archive (plain, gzip or zstd), as Docker does: its
    /// entries are unpacked into the directory `dest` (owners and modes as archived, the same
    /// refusal of entries that would escape it as a layer's). Returns false for a file that is
    /// not an archive (it is copied instead); an archive in a compression this builder cannot
    /// read (bzip2, xz) fails the step rather than being copied packed, which Docker would not do.
    fn add_archive(
        &self,
        writer: &LayerWriter,
        src: &Path,
        dest: &Path,
        at: &str,
    ) -> Result<bool, BuildError> {
        if let Some(kind) = Compression::unsupported(src)? {
            return Err(BuildError::Step {
                at: at.to_owned(),
                message: format!(
                    "ADD {}: {kind} archives are not unpacked here; recompress it with gzip or zstd, or COPY it and unpack it in a RUN step",
                    src.display()
                ),
            });
        }
        let compression = Compression::of(src)?;
        if !compression.is_tar(src)? {
            return Ok(false);
        }
        writer
            .ensure_dirs(dest)
            .map_err(BuildError::io("creating", dest))?;
        let file = std::fs::File::open(src).map_err(BuildError::io("opening", src))?;
        let reader = compression.decoder(file, src)?;
        crate::store::unpack_tar(reader, &writer.host(dest)).map_err(|e| BuildError::Step {
            at: at.to_owned(),
            message: format!("ADD {}: {e}", src.display()),
        })?;
        Ok(true)
    }

    /// WORKDIR: a layer holding the directory when the image lacks it. Returns whether a
    /// layer was added.
    pub(super) fn ensure_dir(
        &self,
        ctx: &mut Ctx<'_>,
        out: &mut StageOut,
        dir: &str,
    ) -> Result<bool, BuildError> {
        let layer_paths: Vec<PathBuf> = out
            .layers
            .iter()
            .map(|l| self.store.layer_dir(&l.diff_id))
            .collect();
        if lookup(&layer_paths, Path::new(dir)).is_some() {
            return Ok(false);
        }
        let layer_dir = ctx
            .work
            .join(format!("workdir-{:08x}", rand::random::<u32>()));
        let writer = LayerWriter {
            root: layer_dir.clone(),
            image: layer_paths,
            uid: 0,
            gid: 0,
            chmod: None,
            owner_set: false,
        };
        std::fs::create_dir_all(&layer_dir).map_err(BuildError::io("creating", &layer_dir))?;
        writer
            .ensure_dirs(Path::new(dir))
            .map_err(BuildError::io("creating", dir))?;
        let layer = self.store.capture_upper(
            &layer_dir,
            &CaptureOptions {
                uid_shift: 0,
                id_count: bulkhead_runtime::IDS_PER_SANDBOX,
                exclude: Vec::new(),
                prune_empty: Vec::new(),
            },
        )?;
        let _ = std::fs::remove_dir_all(&layer_dir);
        let made = layer.is_some();
        out.layers.extend(layer);
        Ok(made)
    }
}

fn ctx_index(ctx: &Ctx<'_>, s: &StageOut) -> usize {
    ctx.stages
        .iter()
        .position(|x| std::ptr::eq(x, s))
        .unwrap_or(usize::MAX)
}

/// Writes files into a layer directory at image paths.
#[derive(Clone)]
struct LayerWriter {
    root: PathBuf,
    image: Vec<PathBuf>,
    uid: u32,
    gid: u32,
    chmod: Option<u32>,
    owner_set: bool,
}

impl LayerWriter {
    fn host(&self, image_path: &Path) -> PathBuf {
        self.root.join(relative(image_path))
    }

    /// Creates `dir` and its missing parents in the layer, each with the mode and owner the
    /// image gives it (root 0755 where the image has none; the copy's owner for the last).
    fn ensure_dirs(&self, dir: &Path) -> std::io::Result<()> {
        let rel = relative(dir);
        let mut image_path = PathBuf::from("/");
        for c in rel.components() {
            image_path.push(c);
            let host = self.host(&image_path);
            if host.symlink_metadata().is_ok() {
                continue;
            }
            std::fs::create_dir(&host)?;
            let (mode, uid, gid) = match lookup(&self.image, &image_path) {
                Some(m) if m.is_dir() => (m.mode() & 0o7777, m.uid(), m.gid()),
                _ if self.owner_set => (0o755, self.uid, self.gid),
                _ => (0o755, 0, 0),
            };
            std::fs::set_permissions(&host, std::fs::Permissions::from_mode(mode))?;
            std::os::unix::fs::lchown(&host, Some(uid), Some(gid))?;
        }
        Ok(())
    }

    fn write_file(&self, target: &Path, body: &[u8]) -> std::io::Result<()> {
        if let Some(p) = target.parent() {
            self.ensure_dirs(p)?;
        }
        let host = self.host(target);
        std::fs::write(&host, body)?;
        let mode = self.chmod.unwrap_or(0o644);
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(mode))?;
        std::os::unix::fs::lchown(&host, Some(self.uid), Some(self.gid))
    }

    /// One file, symlink or (empty) directory from `src` to image path `target`.
    fn copy_one(&self, src: &Path, target: &Path) -> std::io::Result<()> {
        if let Some(p) = target.parent() {
            self.ensure_dirs(p)?;
        }
        let host = self.host(target);
        let meta = src.symlink_metadata()?;
        let ft = meta.file_type();
        if host.symlink_metadata().is_ok() && !(ft.is_dir() && host.is_dir()) {
            std::fs::remove_file(&host).or_else(|_| std::fs::remove_dir_all(&host))?;
        }
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(src)?, &host)?;
        } else if ft.is_dir() {
            if !host.is_dir() {
                std::fs::create_dir(&host)?;
            }
            let mode = self.chmod.unwrap_or(meta.mode() & 0o7777);
            std::fs::set_permissions(&host, std::fs::Permissions::from_mode(mode))?;
        } else if ft.is_file() {
            std::fs::copy(src, &host)?;
            let mode = self.chmod.unwrap_or(meta.mode() & 0o7777);
            std::fs::set_permissions(&host, std::fs::Permissions::from_mode(mode))?;
            let times = std::fs::FileTimes::new().set_modified(meta.modified()?);
            std::fs::File::options()
                .write(true)
                .open(&host)?
                .set_times(times)?;
        } else {
            return Err(std::io::Error::other(format!(
                "{} is not a file, directory or symlink",
                src.display()
            )));
        }
        std::os::unix::fs::lchown(&host, Some(self.uid), Some(self.gid))
    }

    /// `src` and, when it is a directory, everything below it, to `target`.
    fn copy_tree(&self, src: &Path, target: &Path) -> std::io::Result<()> {
        let meta = src.symlink_metadata()?;
        if !meta.is_dir() {
            return self.copy_one(src, target);
        }
        self.ensure_dirs(target)?;
        for e in walkdir::WalkDir::new(src)
            .follow_links(false)
            .min_depth(1)
            .sort_by_file_name()
        {
            let e = e.map_err(std::io::Error::other)?;
            let rel = e.path().strip_prefix(src).unwrap_or(e.path());
            self.copy_one(e.path(), &target.join(rel))?;
        }
        Ok(())
    }
}

/// `user[:group]` (names or numbers) as ids, names looked up in the image's
/// `/etc/passwd` and `/etc/group`.
fn resolve_owner(image: &[PathBuf], spec: &str) -> Option<(u32, u32)> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let read = |p: &str| -> String {
        image
            .iter()
            .rev()
            .map(|l| l.join(p))
            .find(|f| f.is_file())
            .and_then(|f| std::fs::read_to_string(f).ok())
            .unwrap_or_default()
    };
    let passwd = read("etc/passwd");
    let find = |table: &str, name: &str, field: usize| -> Option<u32> {
        if let Ok(n) = name.parse() {
            return Some(n);
        }
        table.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name))
                .then(|| f.get(field).and_then(|v| v.parse().ok()))
                .flatten()
        })
    };
    let uid = find(&passwd, u, 2)?;
    let gid = match g {
        Some(g) => find(&read("etc/group"), g, 2)?,
        // A user alone: its primary group, as Docker does.
        None => {
            if u.parse::<u32>().is_ok() {
                uid
            } else {
                find(&passwd, u, 3)?
            }
        }
    };
    Some((uid, gid))
}
