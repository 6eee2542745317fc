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
        .context("opening the templates directory")?;
    let templates = Arc::new(templates);
    let n = templates.load_all();
    if n > 0 {
        tracing::info!(templates = n, "built templates registered");
    }
    Ok(templates)
}
