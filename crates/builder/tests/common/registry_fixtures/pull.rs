//! What every registry test does: pull with the progress recorded, push a fixture layout, and
//! check the layout a pull handed over.

use std::path::Path;
use std::sync::Mutex;

use bulkhead_builder::registry::{
    self, Auth, Progress, PullOptions, Pulled, Reference, RegistryError,
};

use super::image::{self, Layout};
use super::server::{Registry, read, skopeo_push};

pub const USER: &str = "builder";
pub const PASSWORD: &str = "s3cret-pass";

pub fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

pub fn amd64(auth: Auth) -> PullOptions {
    PullOptions {
        auth,
        insecure: false,
        platform: ("linux".to_owned(), "amd64".to_owned()),
        ca_certificates: Vec::new(),
    }
}

pub fn basic(password: &str) -> Auth {
    Auth::Basic {
        username: USER.to_owned(),
        password: password.to_owned(),
    }
}

/// Pulls and returns the result with every progress event.
pub async fn pull(
    r: &Reference,
    opts: &PullOptions,
    cache: &Path,
) -> (Result<Pulled, RegistryError>, Vec<Progress>) {
    let events = Mutex::new(Vec::new());
    let record = |p: Progress| {
        if let Ok(mut e) = events.lock() {
            e.push(p);
        }
    };
    let result = registry::pull(r, opts, cache, &record).await;
    (result, events.into_inner().unwrap_or_default())
}

pub async fn pull_ok(r: &Reference, opts: &PullOptions, cache: &Path) -> (Pulled, Vec<Progress>) {
    match pull(r, opts, cache).await {
        (Ok(pulled), events) => (pulled, events),
        (Err(e), _) => panic!("pull {r} failed: {e} ({e:?})"),
    }
}

pub fn blob_path(dir: &Path, digest: &str) -> std::path::PathBuf {
    dir.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// The layout is a valid OCI layout naming `manifest` (with `tag` as its ref name), and holds
/// the image's blobs byte for byte.
pub fn check_layout(pulled: &Pulled, image: &image::Image, tag: Option<&str>) {
    let dir = &pulled.layout;
    let oci_layout: serde_json::Value =
        serde_json::from_slice(&read(&dir.join("oci-layout"))).expect("oci-layout json");
    assert_eq!(oci_layout["imageLayoutVersion"], "1.0.0");
    let index: serde_json::Value =
        serde_json::from_slice(&read(&dir.join("index.json"))).expect("index json");
    let entries = index["manifests"].as_array().expect("manifests");
    assert_eq!(entries.len(), 1, "{index}");
    assert_eq!(entries[0]["digest"], pulled.manifest_digest);
    assert_eq!(
        entries[0]["annotations"]["org.opencontainers.image.ref.name"].as_str(),
        tag
    );
    let manifest = read(&blob_path(dir, &pulled.manifest_digest));
    assert_eq!(image::sha256(&manifest), pulled.manifest_digest);
    assert_eq!(entries[0]["size"], manifest.len());
    assert_eq!(
        read(&blob_path(dir, &image.config.digest)),
        image.config.bytes
    );
    assert_eq!(
        read(&blob_path(dir, &image.layer.digest)),
        image.layer.bytes
    );
}

pub fn push(layout: &Layout, registry: &Registry, repo: &str, extra: &[&str]) -> String {
    let dest = format!("{}/{repo}:{}", registry.addr, layout.tag);
    skopeo_push(&layout.skopeo_src(), &dest, extra);
    dest
}
