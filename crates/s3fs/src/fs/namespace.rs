//! Names: unlink, rename (files by copy + delete; directories key by key, not atomic),
//! statfs.

use super::S3Fs;
use super::cache::Known;
use std::time::SystemTime;

use crate::client::Meta;
use crate::client::list::PageCursor;
use crate::client::meta::epoch_secs;
use crate::error::FsError;

impl S3Fs {
    /// `unlink(parent, name)`: deletes the object.
    pub(crate) async fn unlink(&self, parent: u64, name: &std::ffi::OsStr) -> Result<(), FsError> {
        self.check_writable()?;
        let path = self.child_path(parent, name)?;
        match self.resolve(&path).await? {
            Known::Absent => return Err(FsError::NotFound),
            Known::Dir(_) => return Err(FsError::IsDir),
            Known::File { .. } => {}
        }
        let key = self.file_key(&path);
        // A writer still open (or whose release is still committing) must not bring the
        // object back after the delete.
        let writer = self.inodes().ino_of(&path).and_then(|i| self.writer_of(i));
        let mut writer = match &writer {
            Some(w) => Some(w.lock().await),
            None => None,
        };
        if let Some(w) = writer.as_mut() {
            w.unlink(self).await;
        }
        self.client
            .delete_object(&key)
            .await
            .map_err(FsError::s3("DeleteObject", &key))?;
        drop(writer);
        self.cache_put(&path, Known::Absent);
        self.inodes().remove_path(&path);
        self.touch_parent(&path).await;
        Ok(())
    }

    /// `rename(parent, name, newparent, newname)`.
    ///
    /// A file is copied server-side and the source deleted: the target is replaced
    /// atomically (S3 PUT semantics), but for a moment both names exist. A directory is
    /// renamed key by key: not atomic, and a failure midway leaves both partly populated.
    pub(crate) async fn rename(
        &self,
        parent: u64,
        name: &std::ffi::OsStr,
        newparent: u64,
        newname: &std::ffi::OsStr,
        noreplace: bool,
    ) -> Result<(), FsError> {
        self.check_writable()?;
        let from = self.child_path(parent, name)?;
        let to = self.child_path(newparent, newname)?;
        if from == to {
            return Ok(());
        }
        let src = self.resolve(&from).await?;
        let dst = self.resolve(&to).await?;
        if noreplace && dst != Known::Absent {
            return Err(FsError::Exists);
        }
        match (src, dst) {
            (Known::Absent, _) => Err(FsError::NotFound),
            (Known::File { .. }, Known::Dir(_)) => Err(FsError::IsDir),
            (Known::Dir(_), Known::File { .. }) => Err(FsError::NotDir),
            (Known::File { size, mtime, meta }, _) => {
                // Data still being written is committed first, so the copy has all of it.
                let (fk, tk) = (self.file_key(&from), self.file_key(&to));
                let ino = self.inodes().ino_of(&from);
                let writer = ino.and_then(|ino| self.writer_of(ino));
                // Held across the copy so no write lands between the commit and the retarget.
                let mut writer = match &writer {
                    Some(w) => Some(w.lock().await),
                    None => None,
                };
                if let Some(w) = writer.as_mut() {
                    w.commit(self).await?;
                }
                // A rename changes the ctime (when the object stores one); an object without
                // attributes is copied as it is.
                let meta = writer.as_ref().map_or(meta, |w| w.meta());
                let meta = meta.changed(epoch_secs(SystemTime::now()));
                let copied = if meta.is_empty() {
                    self.client.copy_object(&fk, &tk).await
                } else {
                    self.client.copy_object_meta(&fk, &tk, &meta).await
                };
                copied.map_err(FsError::s3("CopyObject", &fk))?;
                self.client
                    .delete_object(&fk)
                    .await
                    .map_err(FsError::s3("DeleteObject", &fk))?;
                // Writes after the rename (the file is still open) go to the new name.
                if let Some(w) = writer.as_mut() {
                    w.retarget(tk.clone(), to.clone());
                    w.set_meta(meta);
                }
                drop(writer);
                self.cache_put(&from, Known::Absent);
                self.cache_put(&to, Known::File { size, mtime, meta });
                self.inodes().rename(&from, &to);
                self.touch_parents(&from, &to).await;
                Ok(())
            }
            (Known::Dir(meta), dst) => {
                if to.starts_with(&format!("{from}/")) {
                    return Err(FsError::Invalid);
                }
                if let Known::Dir(_) = dst {
                    // As rmdir: a file still being written below is not in the bucket yet
                    // (uploads complete at commit), and subdirectories show as prefixes.
                    if !self.writers_under(&to).is_empty() {
                        return Err(FsError::NotEmpty);
                    }
                    let tkey = self.dir_key(&to);
                    let page = self
                        .client
                        .list_page(&tkey, None, None, 2)
                        .await
                        .map_err(FsError::s3("ListObjectsV2", &tkey))?;
                    if page.objects.iter().any(|o| o.key != tkey) || !page.prefixes.is_empty() {
                        return Err(FsError::NotEmpty);
                    }
                }
                let meta = meta.changed(epoch_secs(SystemTime::now()));
                self.rename_dir(&from, &to, meta).await?;
                self.touch_parents(&from, &to).await;
                Ok(())
            }
        }
    }

    /// Updates the times of the directories a rename left and entered.
    async fn touch_parents(&self, from: &str, to: &str) {
        self.touch_parent(from).await;
        if super::inodes::parent_of(from) != super::inodes::parent_of(to) {
            self.touch_parent(to).await;
        }
    }

    /// Moves every key under `from/` to `to/`; the new marker carries the source's `meta`.
    async fn rename_dir(&self, from: &str, to: &str, meta: Meta) -> Result<(), FsError> {
        let (fkey, tkey) = (self.dir_key(from), self.dir_key(to));
        // Pending times of the old names go with them; the new marker carries `meta`.
        let _marker = self.dir_times.forget(from).await;
        // The new marker first, so the target exists even if the source was implicit.
        self.client
            .put_object_meta(&tkey, bytes::Bytes::new(), &meta)
            .await
            .map_err(FsError::s3("PutObject", &tkey))?;
        let mut cursor: Option<PageCursor> = None;
        loop {
            let page = self
                .client
                .list_page(&fkey, None, cursor.as_ref(), 1000)
                .await
                .map_err(FsError::s3("ListObjectsV2", &fkey))?;
            for o in &page.objects {
                let dest = format!("{tkey}{}", &o.key[fkey.len()..]);
                if o.key != fkey {
                    self.client
                        .copy_object(&o.key, &dest)
                        .await
                        .map_err(FsError::s3("CopyObject", &o.key))?;
                }
                self.client
                    .delete_object(&o.key)
                    .await
                    .map_err(FsError::s3("DeleteObject", &o.key))?;
            }
            match page.next {
                // Deleted keys are gone, so a token-less server can restart from the top.
                Some(PageCursor::StartAfter(_)) => cursor = None,
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        self.cache_invalidate(from);
        self.cache_invalidate(to);
        self.cache_put(from, Known::Absent);
        self.cache_put(to, Known::Dir(meta));
        self.inodes().rename(from, to);
        Ok(())
    }
}
