//! The OCI image layout a pull hands over: `oci-layout`, `index.json` naming the pulled
//! manifest, and `blobs/sha256/<hex>` hard links to the verified blobs of the shared cache
//! (a copy where the file system refuses the link).

use std::io;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::RegistryError;
use super::manifest::Descriptor;

/// The annotation OCI layouts name an image's tag with.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd names the full reference with.
pub const IMAGE_NAME: &str = "io.containerd.image.name";

/// Writes (or refreshes) the layout `dir` holding `manifest` and the `blobs` it names, all
/// present in `cache_blobs`. `index.json` is replaced atomically, so a reader sees the old
/// or the new one, never a torn file.
pub(crate) fn write(
    dir: &Path,
    cache_blobs: &Path,
    manifest: &Descriptor,
    blobs: &[&str],
    tag: Option<&str>,
    full_name: &str,
) -> Result<(), RegistryError> {
    let layout_blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&layout_blobs).map_err(|e| io_error("create", &layout_blobs, e))?;
    for digest in blobs {
        let hex = digest.trim_start_matches("sha256:");
        let to = layout_blobs.join(hex);
        let from = cache_blobs.join(hex);
        if same_file(&from, &to)? {
            continue;
        }
        // A link to a blob the cache has since replaced (it failed a later check) or a copy:
        // link the verified one afresh.
        match std::fs::remove_file(&to) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove", &to, e)),
        }
        match std::fs::hard_link(&from, &to) {
            Ok(()) => {}
            Err(_) => {
                let tmp = layout_blobs.join(format!("{hex}.copy-{}", super::unique_suffix()));
                std::fs::copy(&from, &tmp).map_err(|e| io_error("copy", &tmp, e))?;
                std::fs::rename(&tmp, &to).map_err(|e| io_error("rename into place", &to, e))?;
            }
        }
    }
    write_atomic(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let mut entry = serde_json::to_value(manifest).map_err(|e| {
        io_error(
            "serialise",
            &dir.join("index.json"),
            io::Error::new(io::ErrorKind::InvalidData, e),
        )
    })?;
    let mut annotations = serde_json::Map::new();
    if let Some(tag) = tag {
        annotations.insert(REF_NAME.to_owned(), json!(tag));
    }
    annotations.insert(IMAGE_NAME.to_owned(), json!(full_name));
    entry["annotations"] = serde_json::Value::Object(annotations);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": super::manifest::OCI_INDEX,
        "manifests": [entry],
    });
    write_atomic(&dir.join("index.json"), index.to_string().as_bytes())
}

/// Whether `b` exists and is the same inode as `a`.
fn same_file(a: &Path, b: &Path) -> Result<bool, RegistryError> {
    use std::os::unix::fs::MetadataExt;
    let meta_a = std::fs::metadata(a).map_err(|e| io_error("read", a, e))?;
    match std::fs::metadata(b) {
        Ok(meta_b) => Ok(meta_a.dev() == meta_b.dev() && meta_a.ino() == meta_b.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("read", b, e)),
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let mut tmp = PathBuf::from(path);
    tmp.set_extension(format!("tmp-{}", super::unique_suffix()));
    std::fs::write(&tmp, bytes).map_err(|e| io_error("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_error("rename into place", path, e))
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> RegistryError {
    RegistryError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}
