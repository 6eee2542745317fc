//! `serve`'s template builder: the image store, the builder's directories, the network of
//! build sandboxes, and the built templates of earlier runs registered again.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bulkhead_builder::build::{BuildNetwork, Builder, BuilderDirs};
use bulkhead_builder::store::ImageStore;
use bulkhead_runtime::Runtime;
use bulkhead_server::Manager;
use bulkhead_server::manager::NetworkSettings;
use bulkhead_server::templates::{BuildNet, TemplateDefaults, Templates};
use bulkhead_store::DataDir;
use sha2::Digest as _;

use super::serve::Args;

/// Image names that `FROM` imports from the repo's root filesystems on first use.
pub(crate) const DEBIAN_IMAGE: &str = "bulkhead/debian";
/// The code-interpreter root filesystem as an image.
pub(crate) const INTERPRETER_IMAGE: &str = "bulkhead/code-interpreter";

pub(crate) fn setup(
    args: &Args,
    layout: &DataDir,
    runtime: Runtime,
    manager: Arc<Manager>,
    network: Option<NetworkSettings>,
    defaults: TemplateDefaults,
    operator: bulkhead_store::TeamId,
) -> anyhow::Result<Arc<Templates>> {
    let root = layout.root();
    let store = ImageStore::open(&root.join("images")).context("opening the image store")?;
    // Secret files live on a memory filesystem, one directory per data dir.
    let tag: String = sha2::Sha256::digest(root.as_os_str().as_encoded_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    let dirs = BuilderDirs {
        work: root.join("builds"),
        cache: root.join("build-cache"),
        registry: root.join("registry-cache"),
        secrets: PathBuf::from(format!("/dev/shm/bulkhead-secrets-{tag}")),
    };
    let net = network.map(|n| Arc::new(BuildNet(n)) as Arc<dyn BuildNetwork>);
    let builder = Builder::new(runtime, Arc::new(store), dirs, net)
        .context("starting the builder")?
        .with_local_image(DEBIAN_IMAGE, args.base_rootfs.clone())
        .with_local_image(INTERPRETER_IMAGE, args.code_interpreter_rootfs.clone());
    let templates = Templates::new(Arc::new(builder), layout.templates(), manager, defaults)
        .context("opening the templates directory")?
        .with_mounter(Arc::new(super::storage_mount::TemplateMounts(
            layout.clone(),
        )));
    let templates = match server_bucket(args)? {
        Some(b) => templates.with_server_bucket(b),
        None => templates,
    };
    let templates = Arc::new(templates);
    templates.set_operator(operator);
    let n = templates.load_all();
    if n > 0 {
        tracing::info!(templates = n, "built templates registered");
    }
    Ok(templates)
}

/// The bucket of `--storage-bucket` as the server reaches it itself (for `bulkhead
/// validate`'s read-back and credential audit), with the keys the mount uses.
fn server_bucket(args: &Args) -> anyhow::Result<Option<bulkhead_server::bucket::BucketAccess>> {
    use bulkhead_server::bucket::BucketAccess;
    let Some(bucket) = &args.storage_bucket else {
        return Ok(None);
    };
    let credentials = super::mount::resolve_credentials(
        args.storage_profile.as_deref(),
        args.storage_credentials_file.as_deref(),
    )
    .context("the storage bucket's credentials")?;
    Ok(Some(BucketAccess {
        bucket: bucket.clone(),
        key_prefix: BucketAccess::normalise_prefix(&args.storage_prefix),
        endpoint: args
            .storage_endpoint
            .clone()
            .unwrap_or_else(|| BucketAccess::aws_endpoint(&args.storage_region)),
        region: args.storage_region.clone(),
        credentials,
    }))
}

/// `--template-secret`s, read once at start (a missing file is an error then, not at build).
pub(crate) fn template_secrets(
    specs: &[String],
) -> anyhow::Result<std::collections::BTreeMap<String, bulkhead_builder::build::Secret>> {
    let vars: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    specs
        .iter()
        .map(|s| {
            super::template::secret(s, &vars)
                .map(|(id, v)| (id, bulkhead_builder::build::Secret::new(v)))
        })
        .collect()
}

/// Builds each of `dirs` on a task of its own, one after another, logging each step; a
/// failure is logged and changes nothing that is served.
pub(crate) fn build_at_start(
    templates: Arc<Templates>,
    dirs: Vec<PathBuf>,
    secrets: std::collections::BTreeMap<String, bulkhead_builder::build::Secret>,
) {
    if dirs.is_empty() {
        return;
    }
    tokio::spawn(async move {
        for dir in dirs {
            let td = match bulkhead_builder::template_dir::TemplateDir::load(&dir, None) {
                Ok(td) => td,
                Err(e) => {
                    tracing::error!(dir = %dir.display(), error = %e, "template directory not built");
                    continue;
                }
            };
            let name = td
                .config
                .template_name
                .clone()
                .or_else(|| {
                    std::fs::canonicalize(&dir)
                        .ok()
                        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_lowercase()))
                })
                .unwrap_or_else(|| "template".into());
            let shown = name.clone();
            let events: bulkhead_builder::build::EventSink = Arc::new(move |e| {
                use bulkhead_builder::build::BuildEvent as E;
                match e {
                    E::Step {
                        index, total, text, ..
                    } => {
                        tracing::info!(template = %shown, "[{index}/{total}] {text}");
                    }
                    E::Cached { index } => tracing::debug!(template = %shown, index, "cached"),
                    E::Note { message } => tracing::info!(template = %shown, "{message}"),
                    E::Output { line } => tracing::debug!(template = %shown, "| {line}"),
                    E::Done { .. } => {}
                }
            });
            let req = bulkhead_builder::build::BuildRequest {
                template: td,
                args: Vec::new(),
                // One copy per build (a secret is not `Clone`, so that copies are deliberate).
                secrets: secrets
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            bulkhead_builder::build::Secret::new(v.expose().to_vec()),
                        )
                    })
                    .collect(),
                no_cache: false,
                name: name.clone(),
                storage: templates.storage(),
                limits: templates.build_limits(),
                host_paths: true,
                template_bases: None,
            };
            let t0 = std::time::Instant::now();
            // Said on stderr whatever the log level: a first build takes minutes.
            eprintln!(
                "bulkhead: building template {name} from {} (RUST_LOG=info shows its steps)",
                dir.display()
            );
            match templates.build(req, events, None).await {
                Ok(rec) => eprintln!(
                    "bulkhead: template {} built and served ({} steps run, {} cached, {:.1} s)",
                    rec.id,
                    rec.built.steps_run,
                    rec.built.steps_cached,
                    t0.elapsed().as_secs_f64()
                ),
                Err(e) => eprintln!(
                    "bulkhead: template {name} was not built, serving what was there: {e}"
                ),
            }
        }
    });
}
