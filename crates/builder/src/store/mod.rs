//! The image store: content-addressed blobs, unpacked layer directories shared by every
//! template, and named images.
//!
//! # Layout (under the root given to [`ImageStore::open`], all 0700)
//!
//! ```text
//! blobs/sha256/<hex>    layer tarballs (as given: plain or gzip), config and manifest JSON
//! diffids/<blob hex>    the diff_id of a compressed layer blob, so it is unpacked once
//! layers/<diff hex>/    the unpacked layer: what the runtime stacks as an overlay lowerdir
//! images/names.json     name:tag → manifest digest and source
//! tmp/                  everything being written; renamed into place when complete
//! pending/<hex>.<pid>   a layer (or `blob-<hex>.<pid>`, a blob) in place whose data may not
//!                       be on disk yet, marked by writer; holds the boot id
//! lock                  flock: name updates and gc are serialised
//! ```
//!
//! # Layers
//!
//! An unpacked layer is an overlay-ready directory in image ids (host uid 0 in the layer is
//! the image's root: the runtime idmaps it onto the sandbox's range): OCI whiteouts are overlay
//! whiteouts (0/0 character devices), opaque directories carry `trusted.overlay.opaque=y`;
//! owners, modes, mtimes, hard links, symlinks, device nodes, fifos and xattrs are as in the
//! tarball. Tarball entries that would land outside the layer (`..`, absolute paths, a parent
//! that is a symlink) are refused: see `unpack.rs` for how (`lstat`-checked parents in a
//! private directory, last components created with calls that never follow a symlink).
//!
//! Capturing an overlay upper dir ([`ImageStore::capture_upper`]) is the reverse: a
//! deterministic tarball (sorted names, mtimes kept, no user names, no atime/ctime, owners
//! shifted down by the sandbox's first host id), so the same upper gives the same diff_id;
//! `trusted.overlay.*` xattrs never enter it. See `pack.rs`.
//!
//! # Crash safety and concurrency
//!
//! Blobs and layer directories are written under `tmp/` (named for the writing process) and
//! renamed into place, each with a marker in
//! `pending/` that stays until [`ImageStore::sync_pending`] has flushed the file system, which
//! happens before anything naming layers (an image, a name) is written, so one flush covers a
//! whole build. [`ImageStore::open`] removes what processes that no longer run left in `tmp/`,
//! and the layers of their markers (possibly half on disk); the step cache then runs those
//! steps again. Two processes adding the same layer at once
//! both succeed: the second rename finds the layer present and drops its own copy. Name updates
//! and [`ImageStore::gc`] hold an exclusive `flock` on `lock`.
//!
//! [`ImageStore::gc`] removes every blob and layer that no image references and `keep` does not
//! name: a caller holding layers not yet in an image (a build in progress) passes them in `keep`.
//!
//! # Threads
//!
//! Every call blocks on file system work (unpacking a layer takes seconds): async callers run
//! them on a blocking pool. `ImageStore` is `Send + Sync`; calls may run on several threads
//! and in several processes at once.

mod capture;
mod config;
mod digest;
mod error;
mod fix;
mod image;
mod import;
mod layer;
mod nofollow;
mod pack;
mod unpack;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use capture::CaptureOptions;
pub use config::{
    History, Image, ImageConfig, LayerInfo, MEDIA_TYPE_CONFIG, MEDIA_TYPE_INDEX,
    MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_LAYER_ZSTD, MEDIA_TYPE_MANIFEST,
};
pub use digest::Digest;
pub use error::StoreError;
pub(crate) use layer::Compression;
pub(crate) use unpack::unpack as unpack_tar;

/// The image store at one root directory.
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    /// Names temporary entries uniquely within this process.
    counter: AtomicU64,
}

impl ImageStore {
    /// Opens (creating when missing) the store at `root`: `blobs/sha256`, `diffids`, `layers`,
    /// `images` and `tmp` with mode 0700, and removes the entries in `tmp/` that processes no
    /// longer running left behind.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        for dir in [
            "",
            "blobs",
            "blobs/sha256",
            "diffids",
            "layers",
            "images",
            "tmp",
            "pending",
        ] {
            let path = root.join(dir);
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&path)
                .map_err(StoreError::io("creating", &path))?;
            if !dir.is_empty() {
                std::fs::set_permissions(&path, PermissionsExt::from_mode(0o700))
                    .map_err(StoreError::io("setting the mode of", &path))?;
            }
        }
        let store = ImageStore {
            root: root.to_path_buf(),
            counter: AtomicU64::new(0),
        };
        store.clean_tmp()?;
        store.drop_unsynced_layers()?;
        Ok(store)
    }

    /// Layers renamed into place but not yet known to be on disk have a marker in
    /// `pending/` (named by the layer and the writer's pid, holding the boot id) until
    /// [`Self::sync_pending`]
    /// has flushed the file system. A process that died with markers left may have left
    /// half-written files in those layers: they are removed, and the step cache then finds
    /// them missing and runs their steps again.
    fn drop_unsynced_layers(&self) -> Result<(), StoreError> {
        let pending = self.root.join("pending");
        let boot = boot_id();
        for entry in std::fs::read_dir(&pending).map_err(StoreError::io("listing", &pending))? {
            let entry = entry.map_err(StoreError::io("listing", &pending))?;
            let file = entry.file_name().to_string_lossy().into_owned();
            let Some((name, pid)) = file.rsplit_once('.') else {
                let _ = std::fs::remove_file(entry.path());
                continue;
            };
            // Alive: the same boot (a pid of an earlier boot says nothing) and the pid runs.
            let same_boot = std::fs::read_to_string(entry.path()).is_ok_and(|b| b.trim() == boot);
            if same_boot && Path::new("/proc").join(pid).exists() {
                continue;
            }
            let name = name.to_string();
            let target = match name.strip_prefix("blob-") {
                Some(hex) => self.root.join("blobs/sha256").join(hex),
                None => self.root.join("layers").join(&name),
            };
            if target.symlink_metadata().is_ok() {
                tracing::warn!(path = %target.display(), "dropping what was not on disk when its writer died");
                nofollow::remove_any(&target).map_err(StoreError::io("removing", &target))?;
            }
            let _ = std::fs::remove_file(entry.path());
        }
        Ok(())
    }

    /// Marks `name` (a layer's hex, or `blob-<hex>`) as in place but maybe not on disk, for
    /// this process: `pending/<name>.<pid>`, holding the boot id. Returns the marker.
    pub(super) fn mark_pending(&self, name: &str) -> Result<PathBuf, StoreError> {
        let marker = self
            .root
            .join("pending")
            .join(format!("{name}.{}", std::process::id()));
        std::fs::write(&marker, boot_id()).map_err(StoreError::io("marking", &marker))?;
        Ok(marker)
    }

    /// Makes every layer committed so far durable with one `syncfs` of the store's file
    /// system, then forgets their markers. Called before anything that names layers is
    /// written (an image, a name), so a build pays one flush, not one per step.
    ///
    /// # Errors
    /// When the file system cannot be synced.
    pub fn sync_pending(&self) -> Result<(), StoreError> {
        let pending = self.root.join("pending");
        let markers: Vec<PathBuf> = std::fs::read_dir(&pending)
            .map_err(StoreError::io("listing", &pending))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        if markers.is_empty() {
            return Ok(());
        }
        let dir = File::open(&pending).map_err(StoreError::io("opening", &pending))?;
        rustix::fs::syncfs(&dir).map_err(|e| StoreError::io("syncing", &pending)(e.into()))?;
        for m in markers {
            let _ = std::fs::remove_file(m);
        }
        Ok(())
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `root/layers/<hex>`: the unpacked layer with this diff_id (it may not exist).
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    /// Whether the layer with this diff_id is unpacked in the store.
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_dir(diff_id).is_dir()
    }

    /// The unpacked directories of `image`'s layers, bottom (base) first: what the runtime
    /// stacks.
    pub fn layer_dirs(&self, image: &Image) -> Vec<PathBuf> {
        image
            .layers
            .iter()
            .map(|l| self.layer_dir(&l.diff_id))
            .collect()
    }

    /// `root/blobs/sha256/<hex>`: the blob with this digest (it may not exist).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    /// Whether the blob with this digest is in the store.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    fn diffid_path(&self, blob: &Digest) -> PathBuf {
        self.root.join("diffids").join(blob.hex())
    }

    /// A fresh path under `tmp/`, named for this process so that [`ImageStore::open`] in
    /// another process leaves it alone while this one runs.
    fn tmp_path(&self, what: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        self.root
            .join("tmp")
            .join(format!("{}-{n}-{nanos:x}-{what}", std::process::id()))
    }

    fn clean_tmp(&self) -> Result<(), StoreError> {
        let tmp = self.root.join("tmp");
        for entry in std::fs::read_dir(&tmp).map_err(StoreError::io("listing", &tmp))? {
            let entry = entry.map_err(StoreError::io("listing", &tmp))?;
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|p| Path::new("/proc").join(p.to_string()).exists());
            if !alive {
                let path = entry.path();
                nofollow::remove_any(&path).map_err(StoreError::io("removing", &path))?;
            }
        }
        Ok(())
    }

    /// Takes the store's exclusive lock until the returned file is dropped.
    fn lock(&self) -> Result<File, StoreError> {
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(StoreError::io("opening", &path))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| StoreError::io("locking", &path)(e.into()))?;
        Ok(file)
    }
}

/// This boot of the host (`/proc/sys/kernel/random/boot_id`): a writer's pid only says it
/// is alive within the boot it was recorded in.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| b.trim().to_string())
        .unwrap_or_default()
}
