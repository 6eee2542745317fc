//! Directories: open, read (the listing itself is in [`super::listing`]), mkdir (a `dir/`
//! marker object), rmdir (only when nothing but the marker is left).

use super::cache::Known;
use super::inodes::Kind;
use super::{Attr, Handle, S3Fs};
use crate::client::Meta;
use crate::error::FsError;

/// The most entries one readdir call returns: more than a reply buffer (one page, about 25
/// readdirplus entries) can hold, so the kernel's buffer is always filled.
const REPLY_ENTRIES: usize = 256;

/// One directory entry as readdir returns it, with the attributes readdirplus hands the
/// kernel.
#[derive(Clone, Debug)]
pub(crate) struct DirEntry {
    pub name: String,
    pub attr: Attr,
    /// A file's ETag as listed (to recall its stored attributes by version).
    pub etag: Option<String>,
}

/// The listing an open directory serves readdir from, taken at the first call.
pub(crate) struct Listing {
    entries: Vec<DirEntry>,
    /// Whether the entries carry their stored attributes (fetched for readdirplus).
    with_attrs: bool,
}

impl S3Fs {
    /// `opendir(ino)`.
    pub(crate) fn opendir(&self, ino: u64) -> Result<u64, FsError> {
        let (_, kind) = self.path_of(ino)?;
        if kind != Kind::Dir {
            return Err(FsError::NotDir);
        }
        Ok(self.new_fh(Handle::Dir(tokio::sync::Mutex::new(None))))
    }

    /// `readdir(fh, offset)` (`plus`: readdirplus): entries from `offset` on. The listing is
    /// taken once per open directory (at offset 0) and served from memory after that; for
    /// readdirplus with stored attributes it also fetches each entry's attributes.
    pub(crate) async fn readdir(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        plus: bool,
    ) -> Result<Vec<DirEntry>, FsError> {
        let handle = self.handle(fh)?;
        let Handle::Dir(listing) = &*handle else {
            return Err(FsError::BadHandle);
        };
        let mut listing = listing.lock().await;
        let need_attrs = plus && !self.cfg.uniform();
        let stale = listing.as_ref().is_none_or(|l| need_attrs && !l.with_attrs);
        if offset == 0 || stale {
            let mut entries = self.list_dir(ino).await?;
            if need_attrs {
                self.fetch_attrs(ino, &mut entries).await?;
            }
            *listing = Some(Listing {
                entries,
                with_attrs: need_attrs,
            });
        }
        let entries = listing.as_ref().map_or(&[][..], |l| &l.entries);
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        // The kernel's buffer holds a few dozen entries; handing it the whole rest of a
        // 10,000-entry listing at every call would copy it quadratically.
        Ok(entries
            .iter()
            .skip(skip)
            .take(REPLY_ENTRIES)
            .cloned()
            .collect())
    }

    /// `mkdir(parent, name)`: writes the `name/` marker object, carrying `meta`.
    pub(crate) async fn mkdir(
        &self,
        parent: u64,
        name: &std::ffi::OsStr,
        meta: Meta,
    ) -> Result<Attr, FsError> {
        self.check_writable()?;
        let path = self.child_path(parent, name)?;
        if self.resolve(&path).await? != Known::Absent {
            return Err(FsError::Exists);
        }
        let key = self.dir_key(&path);
        let checked = std::time::Instant::now();
        self.client
            .put_object_meta(&key, bytes::Bytes::new(), &meta)
            .await
            .map_err(FsError::s3("PutObject", &key))?;
        self.cache_put(&path, Known::Dir(meta));
        // Nothing was under it (checked above): its whole content is known, empty.
        self.cache_set_complete(&path, 0, checked);
        self.touch_parent(&path).await;
        Ok(Attr {
            ino: self.ino_for(&path, Kind::Dir),
            kind: Kind::Dir,
            size: 0,
            mtime: self.mount_time,
            meta,
        })
    }

    /// `rmdir(parent, name)`: refuses with `ENOTEMPTY` when any key other than the marker is
    /// below it; deletes the marker.
    pub(crate) async fn rmdir(&self, parent: u64, name: &std::ffi::OsStr) -> Result<(), FsError> {
        self.check_writable()?;
        let path = self.child_path(parent, name)?;
        match self.resolve(&path).await? {
            Known::Absent => return Err(FsError::NotFound),
            Known::File { .. } => return Err(FsError::NotDir),
            Known::Dir(_) => {}
        }
        if !self.writers_under(&path).is_empty() {
            return Err(FsError::NotEmpty);
        }
        let key = self.dir_key(&path);
        let page = self
            .client
            .list_page(&key, None, None, 2)
            .await
            .map_err(FsError::s3("ListObjectsV2", &key))?;
        if page.objects.iter().any(|o| o.key != key) || !page.prefixes.is_empty() {
            return Err(FsError::NotEmpty);
        }
        let marker = self.dir_times.forget(&path).await;
        self.client
            .delete_object(&key)
            .await
            .map_err(FsError::s3("DeleteObject", &key))?;
        drop(marker);
        self.cache_invalidate(&path);
        self.cache_put(&path, Known::Absent);
        self.inodes().remove_path(&path);
        self.touch_parent(&path).await;
        Ok(())
    }
}
