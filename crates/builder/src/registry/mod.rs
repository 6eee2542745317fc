//! Pulls from OCI registries into an OCI image layout directory, which the image store
//! imports. Nothing here knows the store.
//!
//! # Contract
//!
//! [`pull`] resolves a [`Reference`] to one image manifest and makes every blob it names
//! present and verified in a cache shared by all pulls, then hands over a layout:
//!
//! ```text
//! cache_dir/
//!   blobs/sha256/<hex>            verified blobs, shared by every pull
//!   blobs/sha256/<hex>.partial    a download in progress, resumed with a Range request
//!   layouts/<manifest hex>/       the layout of one image (what `Pulled::layout` names):
//!     oci-layout, index.json, blobs/sha256/<hex> (hard links into the cache)
//! ```
//!
//! - **Exactness.** `Pulled::manifest_digest` is the sha256 of the manifest bytes as served,
//!   the ones written to the layout; pulling `repo@that-digest` later gives the same image.
//!   A pull by digest refuses bytes that hash otherwise, and so does a pull by tag when the
//!   registry's `Docker-Content-Digest` disagrees with the bytes. The image store writes a
//!   manifest of its own on import, so it is this digest that names the base a template was
//!   built from (pass `reference@manifest_digest` as the imported image's source).
//! - **Verification.** A blob is renamed into `blobs/sha256/<hex>` only after its bytes hash
//!   to `<hex>` and number the descriptor's size. A cached blob is hashed again before it is
//!   used (it is not downloaded again when it passes). A download that fails the check (a
//!   corrupt partial it resumed, or bad bytes in flight) is discarded and fetched whole once
//!   more; when that fails too, the blob is refused with [`RegistryError::DigestMismatch`].
//! - **Resumption.** A transfer that breaks keeps its bytes in `<hex>.partial`; the pull
//!   resumes it (up to four attempts per blob), and so does the next pull. A registry that
//!   ignores `Range` answers 200 and the blob is fetched whole.
//! - **Layers are kept as served** (gzip, zstd or plain tar): the store decompresses them and
//!   checks their `diff_id`s against the config.
//! - **Manifests**: OCI index and image manifest, Docker manifest list and schema-2 manifest.
//!   An index resolves to the entry of `PullOptions::platform`. Schema 1 is refused with
//!   [`RegistryError::UnsupportedManifest`], an artifact (a config that is not an image
//!   config) with [`RegistryError::NotAnImage`].
//! - **Authentication** follows the registry's `WWW-Authenticate` challenge on `GET /v2/`
//!   and on any later 401: `Bearer` asks the named token service for a pull token (sending
//!   `Auth::Basic` credentials if given), `Basic` sends the credentials. Credentials and
//!   tokens go only into `Authorization` headers: never into errors, logs or URLs, and never
//!   in clear text to a token service of an HTTPS registry.
//! - **Transport**: plain HTTP when `PullOptions::insecure` is set or the registry is on a
//!   loopback address with no `ca_certificates` given (as Docker does); HTTPS otherwise,
//!   verified against the system's roots plus `ca_certificates`.
//!
//! Concurrent pulls, in one process or several, may share `cache_dir`: a pull holds an
//! exclusive lock on `<hex>.lock` of each of its blobs (taken in sorted order) until its
//! layout is written, and `index.json` is replaced atomically.
//!
//! The cache is a second copy of what the store imports. [`prune`] frees it: it removes the
//! layouts not kept and every blob no remaining layout links (a blob's link count says so),
//! skipping blobs a pull holds.
//! [`pull`] runs on the caller's tokio runtime (blobs hashed as they arrive); hashing files
//! and taking locks run on its blocking pool.
//!
//! # Why not `oci-client`
//!
//! The protocol above is small (a ping, manifests, blobs, the token dance), and what users act
//! on is in its details. `oci-client` 0.18 can resume a blob (`pull_blob_stream_partial`), but
//! the partial file, its lock, the check of `Content-Range` and the discard-and-refetch rule
//! would still be ours, and its errors are its own (`ServerError { code, .. }`, auth failures
//! that do not tell refused credentials from missing ones). Written here on the workspace's
//! `reqwest`, every failure maps to one [`RegistryError`] variant a user can act on, and the
//! places credentials travel are few enough to read.

mod auth;
mod blob;
mod client;
mod error;
mod layout;
mod manifest;
mod prune;
mod reference;

use std::path::{Path, PathBuf};

use futures_util::{StreamExt, TryStreamExt, stream};

pub use auth::Auth;
pub use error::RegistryError;
pub use layout::{IMAGE_NAME, REF_NAME};
pub use manifest::{
    DOCKER_CONFIG, DOCKER_LIST, DOCKER_MANIFEST, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST,
};
pub use prune::prune;
pub use reference::{DOCKER_HUB, Reference};

use client::Client;
use manifest::{Descriptor, Parsed};

/// How blobs are fetched at once within one pull.
const CONCURRENT_BLOBS: usize = 3;

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Credentials, if any.
    pub auth: Auth,
    /// Plain HTTP instead of HTTPS. A loopback registry gets plain HTTP too unless
    /// `ca_certificates` are given for it.
    pub insecure: bool,
    /// `(os, architecture)` in OCI's terms, e.g. `("linux", "amd64")`: the entry picked from
    /// a multi-platform index.
    pub platform: (String, String),
    /// PEM certificates trusted for this registry besides the system's roots (what Docker
    /// reads from `certs.d/<registry>/ca.crt`). Giving any means the registry speaks TLS,
    /// also on loopback.
    pub ca_certificates: Vec<String>,
}

impl Default for PullOptions {
    /// Anonymous, HTTPS except on loopback, the platform of this machine.
    fn default() -> Self {
        Self {
            auth: Auth::Anonymous,
            insecure: false,
            platform: ("linux".to_owned(), host_architecture().to_owned()),
            ca_certificates: Vec::new(),
        }
    }
}

/// This machine's architecture in OCI's terms (`amd64`, `arm64`, ...).
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// What a pull reports while it runs, in order: `Resolved` once, then per blob any number of
/// `Blob` and one `BlobDone` (blobs interleave: they are fetched concurrently).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The manifest is known.
    Resolved {
        /// The image manifest's digest.
        digest: String,
        /// How many layers it has.
        layers: usize,
        /// The size of the config and all layers.
        total_bytes: u64,
    },
    /// Bytes of a blob are on disk (`done` counts resumed-from bytes too).
    Blob {
        /// The blob.
        digest: String,
        /// Bytes present.
        done: u64,
        /// Its size.
        total: u64,
    },
    /// A blob is present and verified.
    BlobDone {
        /// The blob.
        digest: String,
        /// It was in the cache already: nothing was downloaded.
        cached: bool,
    },
}

/// A finished pull.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// What was asked for.
    pub reference: Reference,
    /// `sha256:...` of the image manifest: the exact image, for templates to record.
    pub manifest_digest: String,
    /// The media type of that manifest (OCI or Docker schema 2), as in `index.json`.
    pub manifest_media_type: String,
    /// The digest of the multi-platform index the manifest was picked from, if any.
    pub index_digest: Option<String>,
    /// The OCI image layout directory holding the image.
    pub layout: PathBuf,
}

/// Pulls `reference` into an OCI layout dir under `cache_dir` (blobs shared across pulls: a
/// blob already present and verified is not downloaded again; a partial download
/// `<hex>.partial` is resumed with a Range request; every blob is verified against its digest
/// before it is renamed into place). See the module's contract.
///
/// # Errors
/// [`RegistryError`]: unreachable registry, refused or missing credentials, no such image,
/// no manifest for the platform, unsupported manifest type, a digest mismatch, a cache I/O
/// failure. Whatever was verified stays in the cache; nothing half-written is ever named by
/// a layout.
#[tracing::instrument(skip_all, fields(reference = %reference))]
pub async fn pull(
    reference: &Reference,
    opts: &PullOptions,
    cache_dir: &Path,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Pulled, RegistryError> {
    let display = reference.to_string();
    let plain_http = opts.insecure || (reference.is_loopback() && opts.ca_certificates.is_empty());
    let client = Client::new(
        &reference.registry,
        &reference.repository,
        plain_http,
        opts.auth.clone(),
        &opts.ca_certificates,
    )?;
    let blobs_dir = cache_dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs_dir).map_err(|source| RegistryError::Io {
        op: "create",
        path: blobs_dir.clone(),
        source,
    })?;
    client.ping().await?;

    let mut fetched = manifest::fetch(
        &client,
        reference.manifest_ref(),
        &display,
        reference.digest.as_deref(),
    )
    .await?;
    let mut index_digest = None;
    let mut parsed = manifest::parse(&fetched, &display)?;
    if let Parsed::Index(entries) = &parsed {
        let (os, arch) = (&opts.platform.0, &opts.platform.1);
        let entry = manifest::select_platform(entries, (os, arch), &display)?;
        let digest = entry.digest.clone();
        index_digest = Some(fetched.digest.clone());
        fetched = manifest::fetch(&client, &digest, &display, Some(&digest)).await?;
        parsed = manifest::parse(&fetched, &display)?;
    }
    let Parsed::Image(image) = parsed else {
        return Err(RegistryError::InvalidManifest {
            reference: display,
            reason: "an index names another index for the platform".to_owned(),
        });
    };
    tracing::debug!(digest = %fetched.digest, layers = image.layers.len(), "manifest resolved");
    progress(Progress::Resolved {
        digest: fetched.digest.clone(),
        layers: image.layers.len(),
        total_bytes: image.config.size + image.layers.iter().map(|l| l.size).sum::<u64>(),
    });
    let wanted: Vec<&Descriptor> = std::iter::once(&image.config)
        .chain(image.layers.iter())
        .collect();
    let mut names: Vec<&str> = vec![fetched.digest.as_str()];
    names.extend(wanted.iter().map(|d| d.digest.as_str()));
    // Held until the layout links every blob, so `prune` never removes one in between.
    let _locks = blob::lock_all(&blobs_dir, &names).await?;
    blob::store_verified(&blobs_dir, &fetched.digest, &fetched.bytes)?;

    stream::iter(wanted.iter().copied())
        .map(|desc| {
            let (client, blobs_dir, display) = (&client, &blobs_dir, &display);
            async move {
                let cached = blob::fetch(client, desc, blobs_dir, display, progress).await?;
                tracing::debug!(digest = %desc.digest, cached, "blob present");
                progress(Progress::BlobDone {
                    digest: desc.digest.clone(),
                    cached,
                });
                Ok::<_, RegistryError>(())
            }
        })
        .buffer_unordered(CONCURRENT_BLOBS)
        .try_collect::<Vec<()>>()
        .await?;

    let manifest_desc = Descriptor {
        media_type: fetched.media_type.clone(),
        digest: fetched.digest.clone(),
        size: fetched.bytes.len() as u64,
        platform: None,
        annotations: None,
    };
    let layout_dir = cache_dir
        .join("layouts")
        .join(fetched.digest.trim_start_matches("sha256:"));
    layout::write(
        &layout_dir,
        &blobs_dir,
        &manifest_desc,
        &names,
        reference.tag.as_deref(),
        &display,
    )?;
    tracing::info!(digest = %fetched.digest, "image pulled");
    Ok(Pulled {
        reference: reference.clone(),
        manifest_digest: fetched.digest,
        manifest_media_type: fetched.media_type,
        index_digest,
        layout: layout_dir,
    })
}

/// A suffix that makes temporary file names unique within this process and across processes.
pub(crate) fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
