//! Named images: config and manifest blobs, the name table, removal and garbage collection.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::{Descriptor, Manifest, OciConfig};
use super::{
    Digest, Image, ImageConfig, ImageStore, LayerInfo, MEDIA_TYPE_CONFIG, MEDIA_TYPE_MANIFEST,
    StoreError, nofollow,
};

/// One row of `images/names.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NameEntry {
    manifest: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
}

type Names = BTreeMap<String, NameEntry>;

/// `name` with `:latest` when it has no tag (a `:` after the last `/`, or a digest).
pub(crate) fn normalize_name(name: &str) -> Result<String, StoreError> {
    let bad = name.is_empty()
        || name.len() > 255
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
        || name.starts_with(':')
        || name.ends_with(':');
    if bad {
        return Err(StoreError::BadName(name.to_string()));
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || last.contains('@') {
        Ok(name.to_string())
    } else {
        Ok(format!("{name}:latest"))
    }
}

impl ImageStore {
    fn names_path(&self) -> std::path::PathBuf {
        self.root.join("images/names.json")
    }

    fn read_names(&self) -> Result<Names, StoreError> {
        let path = self.names_path();
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| StoreError::Json { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Names::new()),
            Err(e) => Err(StoreError::io("reading", path)(e)),
        }
    }

    /// Writes the name table atomically (temp file, fsync, rename). The caller holds the lock.
    fn write_names(&self, names: &Names) -> Result<(), StoreError> {
        let path = self.names_path();
        let bytes = serde_json::to_vec_pretty(names).map_err(|source| StoreError::Json {
            path: path.clone(),
            source,
        })?;
        self.write_file_atomic(&path, &bytes)
    }

    fn write_file_atomic(&self, dst: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        use std::io::Write;
        // What this names must be on disk before it is.
        self.sync_pending()?;
        let tmp = self.tmp_path("file");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(StoreError::io("writing", &tmp)(e));
        }
        std::fs::rename(&tmp, dst).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            StoreError::io("storing", dst)(e)
        })
    }

    fn to_json<T: Serialize>(&self, v: &T) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(v).map_err(|source| StoreError::Json {
            path: self.root.join("blobs"),
            source,
        })
    }

    /// Stores `bytes` as a blob; returns its digest.
    pub(crate) fn put_blob(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let d = Digest::of(bytes);
        if !self.has_blob(&d) {
            self.write_file_atomic(&self.blob_path(&d), bytes)?;
        }
        Ok(d)
    }

    fn read_blob_json<T: for<'de> Deserialize<'de>>(&self, d: &Digest) -> Result<T, StoreError> {
        let path = self.blob_path(d);
        let bytes = std::fs::read(&path).map_err(StoreError::io("reading", &path))?;
        if Digest::of(&bytes) != *d {
            return Err(StoreError::DigestMismatch {
                path,
                expected: d.clone(),
                actual: Digest::of(&bytes),
            });
        }
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Json { path, source })
    }

    /// Writes the OCI config and manifest blobs of an image made of `layers` (bottom first,
    /// each already in the store) and points `name` (`name` alone means `name:latest`) at
    /// it, replacing what the name pointed at before. The name table is updated under the
    /// store's lock and atomically: a reader sees the old image or the new one.
    pub fn put_image(
        &self,
        name: &str,
        config: &ImageConfig,
        layers: &[LayerInfo],
        source: Option<String>,
    ) -> Result<Image, StoreError> {
        let name = normalize_name(name)?;
        for l in layers {
            if !self.has_blob(&l.digest) || !self.has_layer(&l.diff_id) {
                return Err(StoreError::bad(
                    self.layer_dir(&l.diff_id),
                    format!("layer {} is not in the store", l.diff_id),
                ));
            }
        }
        let oci = OciConfig::new(config, layers.iter().map(|l| l.diff_id.clone()).collect());
        let config_bytes = self.to_json(&oci)?;
        let config_digest = self.put_blob(&config_bytes)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: MEDIA_TYPE_MANIFEST.to_string(),
            config: Descriptor {
                media_type: MEDIA_TYPE_CONFIG.to_string(),
                digest: config_digest.clone(),
                size: config_bytes.len() as u64,
                platform: None,
            },
            layers: layers
                .iter()
                .map(|l| Descriptor {
                    media_type: l.media_type.clone(),
                    digest: l.digest.clone(),
                    size: l.size,
                    platform: None,
                })
                .collect(),
        };
        let manifest_digest = self.put_blob(&self.to_json(&manifest)?)?;
        let _lock = self.lock()?;
        let mut names = self.read_names()?;
        names.insert(
            name.clone(),
            NameEntry {
                manifest: manifest_digest.clone(),
                source: source.clone(),
            },
        );
        self.write_names(&names)?;
        Ok(Image {
            name,
            manifest_digest,
            config_digest,
            config: oci.image_config(),
            layers: layers.to_vec(),
            source,
        })
    }

    fn load(&self, name: &str, entry: &NameEntry) -> Result<Image, StoreError> {
        let manifest: Manifest = self.read_blob_json(&entry.manifest)?;
        let oci: OciConfig = self.read_blob_json(&manifest.config.digest)?;
        if oci.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(StoreError::bad(
                self.blob_path(&entry.manifest),
                "manifest and config disagree on the number of layers",
            ));
        }
        let layers = manifest
            .layers
            .iter()
            .zip(&oci.rootfs.diff_ids)
            .map(|(d, diff_id)| LayerInfo {
                diff_id: diff_id.clone(),
                digest: d.digest.clone(),
                size: d.size,
                media_type: d.media_type.clone(),
            })
            .collect();
        Ok(Image {
            name: name.to_string(),
            manifest_digest: entry.manifest.clone(),
            config_digest: manifest.config.digest.clone(),
            config: oci.image_config(),
            layers,
            source: entry.source.clone(),
        })
    }

    /// The image named `name_or_digest` (`name` alone means `name:latest`), or the first
    /// (by name) whose manifest digest it is. `None` when there is none.
    pub fn image(&self, name_or_digest: &str) -> Result<Option<Image>, StoreError> {
        let names = self.read_names()?;
        if let Ok(d) = Digest::parse(name_or_digest) {
            return names
                .iter()
                .find(|(_, e)| e.manifest == d)
                .map(|(n, e)| self.load(n, e))
                .transpose();
        }
        let name = normalize_name(name_or_digest)?;
        names.get(&name).map(|e| self.load(&name, e)).transpose()
    }

    /// Every named image, sorted by name.
    pub fn images(&self) -> Result<Vec<Image>, StoreError> {
        let names = self.read_names()?;
        names.iter().map(|(n, e)| self.load(n, e)).collect()
    }

    /// Removes the name (`name` alone means `name:latest`); its blobs and layers stay until
    /// [`ImageStore::gc`]. Returns whether the name existed.
    pub fn remove_image(&self, name: &str) -> Result<bool, StoreError> {
        let name = normalize_name(name)?;
        let _lock = self.lock()?;
        let mut names = self.read_names()?;
        let existed = names.remove(&name).is_some();
        if existed {
            self.write_names(&names)?;
        }
        Ok(existed)
    }

    /// Removes the layers `layers` (their unpacked directory, blob and diff_id record) that
    /// no named image references and `keep` (diff_ids) does not name: what a template's
    /// rebuild left behind. Unlike [`ImageStore::gc`] it touches nothing else, so the step
    /// cache keeps the layers of stages that are in no image. Returns the bytes freed.
    ///
    /// # Errors
    /// When the names, an image or a layer cannot be read or removed.
    #[tracing::instrument(level = "debug", skip_all)]
    pub fn remove_unused_layers(
        &self,
        layers: &[LayerInfo],
        keep: &[Digest],
    ) -> Result<u64, StoreError> {
        let _lock = self.lock()?;
        let names = self.read_names()?;
        let mut used_layers: HashSet<String> = keep.iter().map(|d| d.hex().to_string()).collect();
        let mut used_blobs = HashSet::new();
        for (name, entry) in &names {
            let image = self.load(name, entry)?;
            for l in &image.layers {
                used_blobs.insert(l.digest.hex().to_string());
                used_layers.insert(l.diff_id.hex().to_string());
            }
        }
        let mut freed = 0;
        for l in layers {
            let mut paths = Vec::new();
            if !used_layers.contains(l.diff_id.hex()) {
                paths.push(self.root.join("layers").join(l.diff_id.hex()));
            }
            if !used_blobs.contains(l.digest.hex()) {
                paths.push(self.root.join("blobs/sha256").join(l.digest.hex()));
                paths.push(self.root.join("diffids").join(l.digest.hex()));
            }
            for path in paths {
                if std::fs::symlink_metadata(&path).is_err() {
                    continue;
                }
                let size =
                    nofollow::tree_size(&path).map_err(StoreError::io("measuring", &path))?;
                nofollow::remove_any(&path).map_err(StoreError::io("removing", &path))?;
                freed += size;
            }
        }
        tracing::debug!(freed, "unused layers removed");
        Ok(freed)
    }

    /// Removes every blob and unpacked layer that no named image references and `keep`
    /// (diff_ids or blob digests) does not name. Returns the bytes freed (file lengths). Holds
    /// the store's lock; layers being built but not yet in an image must be in `keep`.
    /// Refuses (removing nothing) when an image's manifest or config cannot be read.
    #[tracing::instrument(level = "debug", skip_all)]
    pub fn gc(&self, keep: &[Digest]) -> Result<u64, StoreError> {
        let _lock = self.lock()?;
        let names = self.read_names()?;
        let mut blobs: HashSet<String> = keep.iter().map(|d| d.hex().to_string()).collect();
        let mut layers = blobs.clone();
        for (name, entry) in &names {
            let image = self.load(name, entry)?;
            blobs.insert(image.manifest_digest.hex().to_string());
            blobs.insert(image.config_digest.hex().to_string());
            for l in &image.layers {
                blobs.insert(l.digest.hex().to_string());
                layers.insert(l.diff_id.hex().to_string());
            }
        }
        let mut freed = 0;
        for (dir, kept) in [
            ("blobs/sha256", &blobs),
            ("layers", &layers),
            ("diffids", &blobs),
        ] {
            let dir = self.root.join(dir);
            for entry in std::fs::read_dir(&dir).map_err(StoreError::io("listing", &dir))? {
                let entry = entry.map_err(StoreError::io("listing", &dir))?;
                let name = entry.file_name();
                if name.to_str().is_some_and(|n| kept.contains(n)) {
                    continue;
                }
                let path = entry.path();
                let size =
                    nofollow::tree_size(&path).map_err(StoreError::io("measuring", &path))?;
                nofollow::remove_any(&path).map_err(StoreError::io("removing", &path))?;
                freed += size;
            }
        }
        tracing::debug!(freed, "store collected");
        Ok(freed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_latest_unless_tagged() {
        assert_eq!(normalize_name("busybox").unwrap(), "busybox:latest");
        assert_eq!(normalize_name("busybox:1").unwrap(), "busybox:1");
        assert_eq!(
            normalize_name("127.0.0.1:5000/busybox").unwrap(),
            "127.0.0.1:5000/busybox:latest"
        );
        assert!(normalize_name("a b").is_err());
        assert!(normalize_name("").is_err());
    }
}
