//! Directory listings: ListObjectsV2 with `/` as delimiter, every page, and (for
//! readdirplus with stored attributes) each entry's attributes, fetched with bounded
//! concurrency so that `ls -l` costs no request per entry in series.
//!
//! Cache lifetimes start when the whole listing is known (entries are recorded in one batch
//! at the end), so a long listing does not expire its first entries before the caller gets
//! to them.

use std::collections::BTreeMap;
use std::time::SystemTime;

use futures_util::StreamExt;

use super::cache::Known;
use super::dir::DirEntry;
use super::inodes::{self, Kind};
use super::{Attr, S3Fs};
use crate::client::Meta;
use crate::client::list::PageCursor;
use crate::error::FsError;

/// Keys per ListObjectsV2 page.
const PAGE: u32 = 1000;

impl S3Fs {
    /// The whole listing of directory `ino`, `.` and `..` first, with what the listing
    /// tells (type, size, Last-Modified); fills the type cache.
    pub(crate) async fn list_dir(&self, ino: u64) -> Result<Vec<DirEntry>, FsError> {
        let (path, _) = self.path_of(ino)?;
        let dkey = self.dir_key(&path);
        let started = std::time::Instant::now();
        // Each name with what the listing tells, and a file's ETag (its version).
        let mut names: BTreeMap<String, (Known, Option<String>)> = BTreeMap::new();
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
                let etag = (!self.cfg.uniform() && !o.etag.is_empty()).then(|| o.etag.clone());
                names.entry(name.to_string()).or_insert((
                    Known::File {
                        size: o.size,
                        mtime: o.mtime,
                        meta: Meta::default(),
                    },
                    etag,
                ));
            }
            for p in &page.prefixes {
                let name = p[dkey.len().min(p.len())..].trim_end_matches('/');
                if name.is_empty() || name.contains('/') {
                    continue;
                }
                // A directory wins over a file of the same name.
                names.insert(name.to_string(), (Known::Dir(Meta::default()), None));
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        for (p, _) in self.writers_under(&path) {
            let name = p.rsplit('/').next().unwrap_or(&p).to_string();
            names.entry(name).or_insert((
                Known::File {
                    size: 0,
                    mtime: SystemTime::now(),
                    meta: Meta::default(),
                },
                None,
            ));
        }
        let parent_ino = self
            .inodes()
            .ino_of(inodes::parent_of(&path))
            .unwrap_or(inodes::ROOT);
        let mut out = Vec::with_capacity(names.len() + 2);
        out.push(DirEntry {
            name: ".".into(),
            attr: self.dir_attr(ino, Meta::default()),
            etag: None,
        });
        out.push(DirEntry {
            name: "..".into(),
            attr: self.dir_attr(parent_ino, Meta::default()),
            etag: None,
        });
        let count = names.len();
        for (name, (known, etag)) in names {
            let child = inodes::join(&path, &name);
            self.cache_put_listed(&child, known, etag.clone());
            let attr = self.attr_from(&child, known);
            out.push(DirEntry { name, attr, etag });
        }
        // Every name is in the type cache now: any other is absent for the type TTL.
        self.cache_set_complete(&path, count, started);
        Ok(out)
    }

    /// Replaces the listed attributes of `entries` (all but `.` and `..`) with the stored
    /// ones: from an open writer, the stat cache, or a HEAD (of the object, or of the
    /// directory's marker), `listing_concurrency` HEADs at a time. The results go into the
    /// stat cache together, once all are known.
    pub(crate) async fn fetch_attrs(
        &self,
        ino: u64,
        entries: &mut [DirEntry],
    ) -> Result<(), FsError> {
        let (path, _) = self.path_of(ino)?;
        let skip = entries.len().min(2);
        let jobs = entries[skip..].iter().map(|e| {
            let child = inodes::join(&path, &e.name);
            let listed = e.attr;
            let etag = e.etag.as_deref();
            async move {
                let known = self.stored_attrs(&child, listed, etag).await?;
                Ok::<_, FsError>((child, known))
            }
        });
        let results: Vec<Result<(String, Option<Known>), FsError>> =
            futures_util::stream::iter(jobs)
                .buffered(self.cfg.listing_concurrency)
                .collect()
                .await;
        let mut fetched = Vec::with_capacity(results.len());
        for r in results {
            fetched.push(r?);
        }
        for (e, (child, known)) in entries[skip..].iter_mut().zip(fetched) {
            if let Some(known) = known {
                self.cache_put(&child, known);
                let known = self.with_dir_times(&child, known);
                e.attr = self.attr_from(&child, known);
            }
        }
        Ok(())
    }

    /// The stored attributes of a listed entry; `None` when it vanished since the listing
    /// (the listed values stand).
    async fn stored_attrs(
        &self,
        child: &str,
        listed: Attr,
        etag: Option<&str>,
    ) -> Result<Option<Known>, FsError> {
        if let Some((size, meta)) = self.open_writer_state(child).await {
            return Ok(Some(Known::File {
                size,
                mtime: SystemTime::now(),
                meta,
            }));
        }
        if let Some(k) = self.cache_get(child).filter(|k| *k != Known::Absent) {
            return Ok(Some(k));
        }
        Ok(match listed.kind {
            Kind::File => {
                if let Some(k) =
                    etag.and_then(|e| self.recall_attrs(child, e, listed.size, listed.mtime))
                {
                    return Ok(Some(k));
                }
                let key = self.file_key(child);
                let head = self.client.head_object(&key).await;
                head.map_err(FsError::s3("HeadObject", &key))?
                    .map(|m| self.file_headed(child, m))
            }
            Kind::Dir => {
                let key = self.dir_key(child);
                let head = self.client.head_object(&key).await;
                let marker = head.map_err(FsError::s3("HeadObject", &key))?;
                // An implied directory has no marker and no attributes.
                Some(Known::Dir(marker.map(|m| m.meta).unwrap_or_default()))
            }
        })
    }

    /// The attributes of `path` from what is known about it (not `Absent`).
    fn attr_from(&self, path: &str, known: Known) -> Attr {
        match known {
            Known::File { size, mtime, meta } => Attr {
                ino: self.ino_for(path, Kind::File),
                kind: Kind::File,
                size,
                mtime,
                meta,
            },
            Known::Dir(meta) => self.dir_attr(self.ino_for(path, Kind::Dir), meta),
            // Not produced by a listing; shown as an empty directory if it ever were.
            Known::Absent => self.dir_attr(self.ino_for(path, Kind::Dir), Meta::default()),
        }
    }
}
