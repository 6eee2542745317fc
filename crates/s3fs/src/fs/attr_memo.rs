//! Stored attributes remembered by object version, so that a listing of objects that have
//! not changed needs no HEAD per entry (stored attributes only).
//!
//! An object's metadata changes only with the object: a write, or a copy onto itself
//! (`chmod` through any S3 client), and either gives it a new Last-Modified. So the
//! attributes a HEAD returned still hold for an object listed with the same ETag, size and
//! Last-Modified, with one exception: a change within the same second as the version the
//! HEAD saw (Last-Modified has one-second resolution). A HEAD is remembered only when the
//! server's `Date` was already [`crate::client::objects::SETTLED`] past Last-Modified
//! ([`crate::client::ObjectMeta::settled`]): every change after that HEAD carries a later
//! second. Unlike the stat cache this has no TTL, because it is checked against each new
//! listing; the TTLs still decide when S3 is asked again.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::client::Meta;

/// Entries kept; past this the memo starts again empty (a HEAD per entry once more).
const MAX_ENTRIES: usize = 200_000;

struct Memo {
    etag: String,
    size: u64,
    /// Last-Modified, in whole seconds (listings carry milliseconds, HEADs seconds).
    mtime_secs: u64,
    /// Last-Modified as the HEAD gave it, shown again when recalled.
    mtime: SystemTime,
    meta: Meta,
}

/// Path → the attributes of one version of its object.
#[derive(Default)]
pub(crate) struct AttrMemo {
    entries: HashMap<String, Memo>,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl AttrMemo {
    /// Remembers what a settled HEAD of `path` returned.
    pub(crate) fn remember(
        &mut self,
        path: &str,
        etag: &str,
        size: u64,
        mtime: SystemTime,
        meta: Meta,
    ) {
        // A multipart object's Last-Modified is when its upload started, so an upload that
        // started before the HEAD and completed after it can carry the same second, and its
        // ETag (of the parts' digests) is the same for the same content in the same parts.
        if etag.is_empty() || etag.contains('-') {
            return;
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert(
            path.to_string(),
            Memo {
                etag: etag.to_string(),
                size,
                mtime_secs: secs(mtime),
                mtime,
                meta,
            },
        );
    }

    /// The attributes and Last-Modified of `path` if it was remembered at the version a
    /// listing shows now (same ETag, size and Last-Modified second).
    pub(crate) fn recall(
        &self,
        path: &str,
        etag: &str,
        size: u64,
        mtime: SystemTime,
    ) -> Option<(SystemTime, Meta)> {
        let m = self.entries.get(path)?;
        (!etag.is_empty() && m.etag == etag && m.size == size && m.mtime_secs == secs(mtime))
            .then_some((m.mtime, m.meta))
    }

    /// Whether anything is remembered for `path` (a relisting is worth it).
    pub(crate) fn knows(&self, path: &str) -> bool {
        self.entries.contains_key(path)
    }

    /// Forgets `path` (removed, or renamed away).
    pub(crate) fn forget(&mut self, path: &str) {
        self.entries.remove(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn recalled_only_for_the_same_version() {
        let mut m = AttrMemo::default();
        let t = UNIX_EPOCH + Duration::from_secs(1_000);
        let meta = Meta {
            mode: Some(0o100600),
            ..Meta::default()
        };
        m.remember("a", "e1", 5, t, meta);
        // A listing's Last-Modified carries milliseconds.
        let listed = t + Duration::from_millis(250);
        assert_eq!(m.recall("a", "e1", 5, listed), Some((t, meta)));
        assert_eq!(m.recall("a", "e2", 5, listed), None, "another ETag");
        assert_eq!(m.recall("a", "e1", 6, listed), None, "another size");
        let later = t + Duration::from_secs(1);
        assert_eq!(m.recall("a", "e1", 5, later), None, "a copy onto itself");
        assert_eq!(m.recall("b", "e1", 5, listed), None);
        m.forget("a");
        assert!(!m.knows("a"));
        m.remember("c", "", 1, t, meta);
        assert!(!m.knows("c"), "no ETag, nothing to check a listing against");
        m.remember("d", "0123abcd-3", 1, t, meta);
        assert!(
            !m.knows("d"),
            "a multipart object's Last-Modified is its upload's start"
        );
    }
}
