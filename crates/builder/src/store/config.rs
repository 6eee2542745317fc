//! The image values ([`ImageConfig`], [`History`], [`LayerInfo`], [`Image`]) and their OCI JSON
//! forms: the image config (`application/vnd.oci.image.config.v1+json`, with Docker's `Shell`
//! extension) and the image manifest (`application/vnd.oci.image.manifest.v1+json`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Digest;

/// Media type of an uncompressed layer tarball.
pub const MEDIA_TYPE_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Media type of a gzip layer tarball.
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Media type of a zstd layer tarball.
pub const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Media type of an image config.
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of an image manifest.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an image index.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// sha256 of the uncompressed tarball: names the unpacked directory.
    pub diff_id: Digest,
    /// sha256 of the stored blob (equal to `diff_id` for an uncompressed blob).
    pub digest: Digest,
    /// Size of the stored blob in bytes.
    pub size: u64,
    /// Media type of the stored blob.
    pub media_type: String,
}

/// What the image says about running it, and its history (the OCI image config).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `KEY=value` entries.
    pub env: Vec<String>,
    /// `user[:group]`.
    pub user: Option<String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// Default command.
    pub cmd: Option<Vec<String>>,
    /// Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `port/proto` entries.
    pub exposed_ports: Vec<String>,
    /// Shell for shell-form instructions (a Docker extension).
    pub shell: Option<Vec<String>>,
    /// Signal that stops the container.
    pub stop_signal: Option<String>,
    /// Volume paths.
    pub volumes: Vec<String>,
    /// One entry per instruction; those with `empty_layer == false` match the layers in order.
    pub history: Vec<History>,
}

/// One history entry of an image config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// RFC 3339 time.
    pub created: String,
    /// The instruction that made it.
    pub created_by: String,
    /// True when the step made no layer.
    pub empty_layer: bool,
    /// Free text.
    pub comment: Option<String>,
}

/// An image in the store: a name, its manifest and config, its layers bottom first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// `name:tag`.
    pub name: String,
    /// Digest of the manifest blob.
    pub manifest_digest: Digest,
    /// Digest of the config blob.
    pub config_digest: Digest,
    /// The config.
    pub config: ImageConfig,
    /// Layers, bottom (base) first.
    pub layers: Vec<LayerInfo>,
    /// Where it came from (`registry/repo@sha256:...`, `import:/path`), when known.
    pub source: Option<String>,
}

/// The OCI image config document.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct OciConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RunConfig>,
    pub rootfs: RootFs,
    #[serde(default)]
    pub history: Vec<OciHistory>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RunConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shell: Option<Vec<String>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct OciHistory {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    empty_layer: bool,
}

fn non_empty<T: IsEmpty>(v: T) -> Option<T> {
    (!v.is_empty()).then_some(v)
}

trait IsEmpty {
    fn is_empty(&self) -> bool;
}
impl<T> IsEmpty for Vec<T> {
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
}
impl<K, V> IsEmpty for BTreeMap<K, V> {
    fn is_empty(&self) -> bool {
        BTreeMap::is_empty(self)
    }
}
impl IsEmpty for String {
    fn is_empty(&self) -> bool {
        String::is_empty(self)
    }
}

/// The Go architecture name of this host, as OCI platforms spell it.
pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

impl OciConfig {
    /// The config document of `config` over layers with `diff_ids`.
    pub(crate) fn new(config: &ImageConfig, diff_ids: Vec<Digest>) -> Self {
        let set = |v: &[String]| {
            v.iter()
                .map(|k| (k.clone(), serde_json::json!({})))
                .collect()
        };
        OciConfig {
            created: config.history.last().map(|h| h.created.clone()),
            architecture: host_arch().to_string(),
            os: "linux".to_string(),
            config: Some(RunConfig {
                user: config.user.clone(),
                exposed_ports: non_empty(set(&config.exposed_ports)),
                env: non_empty(config.env.clone()),
                entrypoint: config.entrypoint.clone(),
                cmd: config.cmd.clone(),
                volumes: non_empty(set(&config.volumes)),
                working_dir: config.workdir.clone(),
                labels: non_empty(config.labels.clone()),
                stop_signal: config.stop_signal.clone(),
                shell: config.shell.clone(),
            }),
            rootfs: RootFs {
                kind: "layers".to_string(),
                diff_ids,
            },
            history: config
                .history
                .iter()
                .map(|h| OciHistory {
                    created: Some(h.created.clone()),
                    created_by: Some(h.created_by.clone()),
                    comment: h.comment.clone(),
                    empty_layer: h.empty_layer,
                })
                .collect(),
        }
    }

    /// The [`ImageConfig`] this document holds.
    pub(crate) fn image_config(&self) -> ImageConfig {
        let run = self.config.as_ref();
        let keys = |m: Option<&BTreeMap<String, serde_json::Value>>| {
            m.map(|m| m.keys().cloned().collect()).unwrap_or_default()
        };
        ImageConfig {
            env: run.and_then(|r| r.env.clone()).unwrap_or_default(),
            user: run.and_then(|r| r.user.clone()).and_then(non_empty),
            workdir: run.and_then(|r| r.working_dir.clone()).and_then(non_empty),
            cmd: run.and_then(|r| r.cmd.clone()),
            entrypoint: run.and_then(|r| r.entrypoint.clone()),
            labels: run.and_then(|r| r.labels.clone()).unwrap_or_default(),
            exposed_ports: keys(run.and_then(|r| r.exposed_ports.as_ref())),
            shell: run.and_then(|r| r.shell.clone()),
            stop_signal: run.and_then(|r| r.stop_signal.clone()).and_then(non_empty),
            volumes: keys(run.and_then(|r| r.volumes.as_ref())),
            history: self
                .history
                .iter()
                .map(|h| History {
                    created: h.created.clone().unwrap_or_default(),
                    created_by: h.created_by.clone().unwrap_or_default(),
                    empty_layer: h.empty_layer,
                    comment: h.comment.clone(),
                })
                .collect(),
        }
    }
}

/// A content descriptor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An index entry's platform.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
}

/// An image manifest.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// An image index (or Docker manifest list).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Index {
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}
