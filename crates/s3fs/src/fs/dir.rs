//! Directories: listing (ListObjectsV2 with `/` as delimiter, every page), mkdir (a `dir/`
//! marker object), rmdir (only when nothing but the marker is left).

use std::collections::BTreeMap;

use super::cache::Known;
use super::inodes::{self, Kind};
use super::{Attr, Handle, S3Fs};
use crate::client::Meta;
use crate::client::list::PageCursor;
use crate::error::FsError;

/// Keys per ListObjectsV2 page.
const PAGE: u32 = 1000;

/// One directory entry as readdir returns it.
#[derive(Clone, Debug)]
pub(crate) struct DirEntry {
    pub ino: u64,
    pub kind: Kind,
    pub name: String,
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

    /// `readdir(fh, offset)`: entries from `offset` on. The listing is taken once per open
    /// directory (at offset 0) and served from memory after that.
    pub(crate) async fn readdir(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
    ) -> Result<Vec<DirEntry>, FsError> {
        let handle = self.handle(fh)?;
        let Handle::Dir(listing) = &*handle else {
            return Err(FsError::BadHandle);
        };
        let mut listing = listing.lock().await;
        if offset == 0 || listing.is_none() {
            *listing = Some(self.list_dir(ino).await?);
        }
        let entries = listing.as_deref().unwrap_or_default();
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        Ok(entries.iter().skip(skip).cloned().collect())
    }

    /// The whole listing of directory `ino`, `.` and `..` first; fills the caches.
    async fn list_dir(&self, ino: u64) -> Result<Vec<DirEntry>, FsError> {
        let (path, _) = self.path_of(ino)?;
        let dkey = self.dir_key(&path);
        let mut names: BTreeMap<String, (Kind, Known)> = BTreeMap::new();
        let mut cursor: Option<PageCursor> = None;
        loop {
            let page = self
                .client
                .list_page(&dkey, Some("/"), cursor.as_ref(), PAGE)
                .await
                .map_err(FsError::s3("ListObjectsV2", &dkey))?;
            for o in &page.objects {
                let name = &o.key[dkey.len().min(o.key.len())..];
                if name.is_empty() || name.contains('/') {
                    continue; // the directory's own marker
                }
                names.entry(name.to_string()).or_insert((
                    Kind::File,
                    Known::File {
                        size: o.size,
                        mtime: o.mtime,
                        meta: Meta::default(),
                    },
                ));
            }
            for p in &page.prefixes {
                let name = p[dkey.len().min(p.len())..].trim_end_matches('/');
                if name.is_empty() || name.contains('/') {
                    continue;
                }
                // A directory wins over a file of the same name.
                names.insert(name.to_string(), (Kind::Dir, Known::Dir(Meta::default())));
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        for (p, _) in self.writers_under(&path) {
            let name = p.rsplit('/').next().unwrap_or(&p).to_string();
            names.entry(name).or_insert((
                Kind::File,
                Known::File {
                    size: 0,
                    mtime: std::time::SystemTime::now(),
                    meta: Meta::default(),
                },
            ));
        }
        let parent_ino = self
            .inodes()
            .ino_of(inodes::parent_of(&path))
            .unwrap_or(super::inodes::ROOT);
        let mut out = Vec::with_capacity(names.len() + 2);
        out.push(DirEntry {
            ino,
            kind: Kind::Dir,
            name: ".".into(),
        });
        out.push(DirEntry {
            ino: parent_ino,
            kind: Kind::Dir,
            name: "..".into(),
        });
        for (name, (kind, known)) in names {
            let child = inodes::join(&path, &name);
            // Listings carry no attributes: only the type is cached.
            self.cache_put_listed(&child, known);
            out.push(DirEntry {
                ino: self.ino_for(&child, kind),
                kind,
                name,
            });
        }
        Ok(out)
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
        self.client
            .put_object_meta(&key, bytes::Bytes::new(), &meta)
            .await
            .map_err(FsError::s3("PutObject", &key))?;
        self.cache_put(&path, Known::Dir(meta));
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
        self.client
            .delete_object(&key)
            .await
            .map_err(FsError::s3("DeleteObject", &key))?;
        self.cache_invalidate(&path);
        self.cache_put(&path, Known::Absent);
        self.inodes().remove_path(&path);
        self.touch_parent(&path).await;
        Ok(())
    }
}
