//! Imports, told apart by what the source is: a root filesystem directory, a root filesystem
//! tarball (plain or gzip), an OCI image layout directory, or a tarball holding a Docker
//! archive (`docker save`: `manifest.json` + layer tarballs) or an OCI image layout.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::config::{Descriptor, Index, Manifest, OciConfig, host_arch};
use super::layer::Compression;
use super::pack::PackOptions;
use super::unpack::unpack;
use super::{
    Digest, History, Image, ImageConfig, ImageStore, LayerInfo, MEDIA_TYPE_LAYER_TAR, StoreError,
    nofollow,
};

/// The `PATH` of an image imported from a bare root filesystem (Docker's default).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One image of a Docker archive's `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveImage {
    config: String,
    layers: Vec<String>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `dir/rel` resolved (symlinks followed, as archives use them for shared layers) and
/// refused unless it stays inside `dir`.
fn contained(dir: &Path, rel: &str) -> Result<PathBuf, StoreError> {
    let base = dir
        .canonicalize()
        .map_err(StoreError::io("resolving", dir))?;
    let path = dir.join(rel);
    let real = path
        .canonicalize()
        .map_err(StoreError::io("resolving", &path))?;
    if !real.starts_with(&base) {
        return Err(StoreError::bad(path, "points outside the image"));
    }
    Ok(real)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, StoreError> {
    let bytes = std::fs::read(path).map_err(StoreError::io("reading", path))?;
    serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
        path: path.to_path_buf(),
        source,
    })
}

impl ImageStore {
    /// Imports `src` as the image `name` (`name` alone means `name:latest`), recording
    /// `import:<src>` as its source. `src` is told apart, not flagged:
    ///
    /// * a directory with `oci-layout` and `index.json`: an OCI image layout (from an index,
    ///   the manifest for linux and this host's architecture, or its only manifest);
    /// * any other directory: a root filesystem, one layer, tarred deterministically (sorted,
    ///   mtimes kept, owners as they are);
    /// * a (plain or gzip) tarball with a top-level `manifest.json` (Docker archive) or
    ///   `oci-layout` (OCI layout): that image;
    /// * any other tarball: a root filesystem, one layer.
    ///
    /// The config and history of a layout or archive are kept; their layers must match the
    /// config's `rootfs.diff_ids`. Nothing is named when any part fails.
    pub fn import(&self, src: &Path, name: &str) -> Result<Image, StoreError> {
        self.import_as(src, name, format!("import:{}", src.display()))
    }

    /// [`ImageStore::import`] with the source recorded as `source` (a registry reference with
    /// its digest, for a layout a pull wrote).
    #[tracing::instrument(level = "debug", skip_all, fields(path = %src.display(), name))]
    pub fn import_as(&self, src: &Path, name: &str, source: String) -> Result<Image, StoreError> {
        let meta = src.metadata().map_err(StoreError::io("inspecting", src))?;
        let (config, layers) = if meta.is_dir() {
            if src.join("oci-layout").is_file() && src.join("index.json").is_file() {
                self.read_layout(src)?
            } else {
                let layer = self.add_layer_dir(src)?;
                (rootfs_config(src), vec![layer])
            }
        } else {
            match archive_kind(src)? {
                ArchiveKind::Rootfs => {
                    let layer = self.add_layer_tar(src, None)?;
                    (rootfs_config(src), vec![layer])
                }
                kind => self.read_archive(src, kind)?,
            }
        };
        self.put_image(name, &config, &layers, Some(source))
    }

    /// Stores the directory tree `dir` as one layer, leaving `dir` as it is: a deterministic
    /// tarball (sorted names, mtimes kept, owners and xattrs as they are, no
    /// `trusted.overlay.*`; overlay whiteouts and opaque directories become their OCI markers)
    /// unpacked into the store. The same tree gives the same diff_id. For a tree assembled by
    /// the caller (a COPY step) as much as for a root filesystem.
    pub fn add_layer_dir(&self, dir: &Path) -> Result<LayerInfo, StoreError> {
        let tmp_blob = self.tmp_path("blob");
        let opts = PackOptions {
            shift: 0,
            count: u32::MAX,
            exclude: &[],
            fix_in_place: false,
        };
        let packed = self.pack_to(dir, &opts, &tmp_blob);
        let result = packed.and_then(|(digest, size, _)| {
            self.add_packed(&tmp_blob, &digest)?;
            Ok(LayerInfo {
                diff_id: digest.clone(),
                digest,
                size,
                media_type: MEDIA_TYPE_LAYER_TAR.to_string(),
            })
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp_blob);
        }
        result
    }

    /// Unpacks (unless present) and stores a plain tarball blob written under `tmp/`.
    fn add_packed(&self, tmp_blob: &Path, digest: &Digest) -> Result<(), StoreError> {
        // Already under tmp/ with a known digest: unpacked from where it is, then renamed.
        self.unpack_blob(tmp_blob, Compression::None, digest)?;
        self.commit_blob(tmp_blob, digest)
    }

    fn read_layout(&self, dir: &Path) -> Result<(ImageConfig, Vec<LayerInfo>), StoreError> {
        let index: Index = read_json(&dir.join("index.json"))?;
        let mut desc = pick(dir, &index)?;
        // An index may point at further indexes (multi-platform images).
        for _ in 0..4 {
            if !is_index(&desc.media_type) {
                break;
            }
            let inner: Index = read_json(&blob_in(dir, &desc.digest)?)?;
            desc = pick(dir, &inner)?;
        }
        let manifest: Manifest = read_json(&blob_in(dir, &desc.digest)?)?;
        let oci: OciConfig = read_json(&blob_in(dir, &manifest.config.digest)?)?;
        let mut layers = Vec::new();
        for l in &manifest.layers {
            layers.push(self.add_layer_tar(&blob_in(dir, &l.digest)?, Some(&l.digest))?);
        }
        check_diff_ids(dir, &oci, &layers)?;
        Ok((oci.image_config(), layers))
    }

    fn read_archive(
        &self,
        src: &Path,
        kind: ArchiveKind,
    ) -> Result<(ImageConfig, Vec<LayerInfo>), StoreError> {
        let dir = self.tmp_path("archive");
        std::fs::create_dir(&dir).map_err(StoreError::io("creating", &dir))?;
        let result = (|| {
            let reader = open_maybe_gzip(src)?;
            unpack(reader, &dir)?;
            match kind {
                ArchiveKind::Docker => self.read_docker_archive(&dir),
                _ => self.read_layout(&dir),
            }
        })();
        let _ = nofollow::remove_any(&dir);
        result.map_err(|e| match e {
            StoreError::BadImage { reason, .. } => StoreError::bad(src, reason),
            e => e,
        })
    }

    fn read_docker_archive(&self, dir: &Path) -> Result<(ImageConfig, Vec<LayerInfo>), StoreError> {
        let images: Vec<ArchiveImage> = read_json(&dir.join("manifest.json"))?;
        let [image] = images.as_slice() else {
            return Err(StoreError::bad(
                dir,
                "a Docker archive with other than one image",
            ));
        };
        let oci: OciConfig = read_json(&contained(dir, &image.config)?)?;
        let mut layers = Vec::new();
        for l in &image.layers {
            layers.push(self.add_layer_tar(&contained(dir, l)?, None)?);
        }
        check_diff_ids(dir, &oci, &layers)?;
        Ok((oci.image_config(), layers))
    }
}

fn rootfs_config(src: &Path) -> ImageConfig {
    ImageConfig {
        env: vec![DEFAULT_PATH.to_string()],
        history: vec![History {
            created: now(),
            created_by: format!("import {}", src.display()),
            empty_layer: false,
            comment: None,
        }],
        ..ImageConfig::default()
    }
}

fn check_diff_ids(src: &Path, oci: &OciConfig, layers: &[LayerInfo]) -> Result<(), StoreError> {
    let got: Vec<_> = layers.iter().map(|l| &l.diff_id).collect();
    let want: Vec<_> = oci.rootfs.diff_ids.iter().collect();
    if got != want {
        return Err(StoreError::bad(
            src,
            "the layers do not match the config's rootfs.diff_ids",
        ));
    }
    Ok(())
}

fn is_index(media_type: &str) -> bool {
    media_type == super::MEDIA_TYPE_INDEX
        || media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
}

/// The blob `d` of the layout at `dir`.
fn blob_in(dir: &Path, d: &Digest) -> Result<PathBuf, StoreError> {
    contained(dir, &format!("blobs/sha256/{}", d.hex()))
}

/// The manifest for linux on this host's architecture, or the index's only one.
fn pick(dir: &Path, index: &Index) -> Result<Descriptor, StoreError> {
    let wanted = index.manifests.iter().find(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == host_arch())
    });
    match (wanted, index.manifests.as_slice()) {
        (Some(d), _) => Ok(d.clone()),
        (None, [only]) => Ok(only.clone()),
        (None, []) => Err(StoreError::bad(dir, "the index lists no manifest")),
        (None, _) => Err(StoreError::bad(
            dir,
            format!("the index has no manifest for linux/{}", host_arch()),
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArchiveKind {
    Rootfs,
    Docker,
    Layout,
}

fn open_maybe_gzip(src: &Path) -> Result<Box<dyn Read>, StoreError> {
    let file = File::open(src).map_err(StoreError::io("opening", src))?;
    Compression::of(src)?.decoder(file, src)
}

/// What a tarball holds, from its top-level names (one pass over the headers).
fn archive_kind(src: &Path) -> Result<ArchiveKind, StoreError> {
    let mut archive = tar::Archive::new(open_maybe_gzip(src)?);
    let (mut docker, mut layout) = (false, false);
    let entries = archive
        .entries()
        .map_err(StoreError::io("reading the tarball", src))?;
    for entry in entries {
        let entry = entry.map_err(StoreError::io("reading the tarball", src))?;
        let path = entry.path_bytes();
        let name = path.strip_prefix(b"./").unwrap_or(&path);
        docker |= name == b"manifest.json";
        layout |= name == b"oci-layout";
    }
    Ok(match (docker, layout) {
        (true, _) => ArchiveKind::Docker,
        (false, true) => ArchiveKind::Layout,
        _ => ArchiveKind::Rootfs,
    })
}
