//! FROM: `scratch`, an earlier stage, an image in the store, an OCI layout or docker archive
//! on disk, or a registry reference (pulled, then kept in the store under its reference, so
//! that the next build finds it locally). The base is recorded by digest.

use std::path::Path;

use super::cache::Key;
use super::executor::{Ctx, StageOut};
use super::{BuildError, BuildEvent, Builder};
use crate::dockerfile::Stage;
use crate::registry::{self, Auth, Progress, PullOptions, Reference};
use crate::store::{Image, ImageConfig};

impl Builder {
    pub(super) fn resolve_base(
        &self,
        ctx: &mut Ctx<'_>,
        base: &str,
        stage: &Stage,
    ) -> Result<StageOut, BuildError> {
        let at = format!("{}:{}", ctx.req.template.dockerfile_name, stage.loc.line);
        if base == "scratch" {
            return Ok(StageOut {
                name: None,
                layers: Vec::new(),
                config: ImageConfig::default(),
                key: Key::base("scratch"),
                base: "scratch".into(),
            });
        }
        let lower = base.to_ascii_lowercase();
        if let Some(s) = ctx
            .stages
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            return Ok(s.clone());
        }
        if let Some(name) = lower.strip_prefix("bulkhead-template/") {
            let name = name.strip_suffix(":latest").unwrap_or(name);
            if ctx
                .req
                .template_bases
                .as_ref()
                .is_some_and(|allowed| !allowed.contains(name))
            {
                return Err(BuildError::Step {
                    at,
                    message: format!("FROM {base}: no template {name:?} of yours or the server's"),
                });
            }
        }
        if let Some(img) = self.store.image(base)? {
            return Ok(from_image(&img, base));
        }
        let plain = base.strip_suffix(":latest").unwrap_or(base);
        if let Some((name, dir)) = self.local_images.iter().find(|(n, _)| n == plain)
            && dir.is_dir()
        {
            ctx.note(format!(
                "importing {} as {name} (once: later builds find it in the image store)",
                dir.display()
            ));
            let img = self.store.import(dir, name)?;
            return Ok(from_image(&img, name));
        }
        let on_disk = ctx.req.template.dir.join(base);
        let is_path = base.starts_with('/') || base.starts_with("./") || base.starts_with("../");
        if is_path && !ctx.req.host_paths {
            return Err(BuildError::Step {
                at,
                message: format!(
                    "FROM {base}: a path on the server is for the server's own templates; push the image to a registry, or have the operator import it"
                ),
            });
        }
        if is_path && on_disk.exists() {
            let name = format!("import/{}:latest", digest_name(base));
            ctx.note(format!(
                "importing the base image from {}",
                on_disk.display()
            ));
            let img = self.store.import(&on_disk, &name)?;
            return Ok(from_image(&img, &format!("import:{}", on_disk.display())));
        }
        let reference = Reference::parse(base).map_err(|e| BuildError::Step {
            at: at.clone(),
            message: format!(
                "FROM {base}: no such stage or image in the local store, and not a registry reference ({e})"
            ),
        })?;
        let canonical = reference.to_string();
        if let Some(img) = self.store.image(&canonical)? {
            return Ok(from_image(&img, &canonical));
        }
        let img = self.pull(ctx, &reference, &canonical)?;
        Ok(from_image(&img, &canonical))
    }

    fn pull(
        &self,
        ctx: &Ctx<'_>,
        reference: &Reference,
        canonical: &str,
    ) -> Result<Image, BuildError> {
        ctx.note(format!("pulling {canonical}"));
        let events = ctx.events.clone();
        let progress = move |p: Progress| {
            if let Progress::Resolved {
                digest,
                layers,
                total_bytes,
            } = p
            {
                events(BuildEvent::Note {
                    message: format!(
                        "resolved {digest}: {layers} layers, {:.1} MiB",
                        total_bytes as f64 / 1_048_576.0
                    ),
                });
            }
        };
        let opts = PullOptions {
            auth: registry_auth(reference),
            insecure: false,
            platform: ("linux".into(), "amd64".into()),
            ca_certificates: Vec::new(),
        };
        let cache = self.dirs.registry.clone();
        let fut = registry::pull(reference, &opts, &cache, &progress);
        let pulled = match tokio::runtime::Handle::try_current() {
            Ok(h) => h.block_on(fut),
            Err(_) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(BuildError::io("starting a runtime for", &cache))?
                .block_on(fut),
        }?;
        // The template records the registry's own manifest digest: the exact base.
        let plain = canonical.split('@').next().unwrap_or(canonical);
        let exact = format!("{plain}@{}", pulled.manifest_digest);
        let img = self.store.import_as(&pulled.layout, canonical, exact)?;
        // The pull cache is a second copy of what the store now holds.
        if let Err(e) = registry::prune(&cache, &[]) {
            tracing::warn!(error = %e, "could not free the registry pull cache");
        }
        Ok(img)
    }
}

/// Registry credentials from the server's environment (`BULKHEAD_REGISTRY_AUTH_<HOST>` as
/// `user:password`, the host upper-cased with `.`, `:` and `-` as `_`); anonymous without.
fn registry_auth(reference: &Reference) -> Auth {
    let var = format!(
        "BULKHEAD_REGISTRY_AUTH_{}",
        reference
            .registry
            .to_ascii_uppercase()
            .replace(['.', ':', '-'], "_")
    );
    match std::env::var(var).ok().and_then(|v| {
        v.split_once(':')
            .map(|(u, p)| (u.to_string(), p.to_string()))
    }) {
        Some((username, password)) => Auth::Basic { username, password },
        None => Auth::Anonymous,
    }
}

fn from_image(img: &Image, shown: &str) -> StageOut {
    // A pulled image names its registry digest; anything else the store's own.
    let base = match &img.source {
        Some(s) if s.contains("@sha256:") && !s.starts_with("import") => s.clone(),
        _ => format!(
            "{}@{}",
            shown.split('@').next().unwrap_or(shown),
            img.manifest_digest
        ),
    };
    StageOut {
        name: None,
        layers: img.layers.clone(),
        config: img.config.clone(),
        key: Key::base(&img.manifest_digest.to_string()),
        base,
    }
}

fn digest_name(s: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let h = Sha256::digest(Path::new(s).as_os_str().as_encoded_bytes());
    h.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
