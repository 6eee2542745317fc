//! Where Bulkhead keeps its files under the data directory (ARCHITECTURE.md, "Where the data
//! lives"). Pure path arithmetic: nothing here touches the filesystem.

use std::path::{Path, PathBuf};

/// The data directory (`/var/lib/bulkhead` or `$BULKHEAD_DATA_DIR` by default; the binary
/// decides) and the paths inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The default location when neither a flag nor `BULKHEAD_DATA_DIR` gives one.
    pub const DEFAULT: &'static str = "/var/lib/bulkhead";

    /// A layout rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    /// The data directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `db.sqlite`: the metadata database ([`crate::Store::open`]).
    pub fn db(&self) -> PathBuf {
        self.root.join("db.sqlite")
    }

    /// `api-key`: the first API key, written once on first start (mode 0600).
    pub fn api_key_file(&self) -> PathBuf {
        self.root.join("api-key")
    }

    /// `blobs/sha256/`: content-addressed image blobs.
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    /// `layers/`: unpacked layers, one directory per diff id.
    pub fn layers(&self) -> PathBuf {
        self.root.join("layers")
    }

    /// `templates/`: one directory per template.
    pub fn templates(&self) -> PathBuf {
        self.root.join("templates")
    }

    /// `sandboxes/`: one directory per sandbox (upper dir, sockets, logs).
    pub fn sandboxes(&self) -> PathBuf {
        self.root.join("sandboxes")
    }

    /// `sandboxes/<id>/`. The caller must pass an id it validated (no `/`, not `..`).
    pub fn sandbox(&self, sandbox_id: &str) -> PathBuf {
        self.sandboxes().join(sandbox_id)
    }

    /// `mounts/`: host-side bucket mounts.
    pub fn mounts(&self) -> PathBuf {
        self.root.join("mounts")
    }
}

impl Default for DataDir {
    fn default() -> DataDir {
        DataDir::new(DataDir::DEFAULT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_architecture() {
        let d = DataDir::new("/d");
        assert_eq!(d.db(), Path::new("/d/db.sqlite"));
        assert_eq!(d.api_key_file(), Path::new("/d/api-key"));
        assert_eq!(d.blobs(), Path::new("/d/blobs/sha256"));
        assert_eq!(d.sandbox("abc"), Path::new("/d/sandboxes/abc"));
        assert_eq!(d.mounts(), Path::new("/d/mounts"));
        assert_eq!(DataDir::default().root(), Path::new("/var/lib/bulkhead"));
    }
}
