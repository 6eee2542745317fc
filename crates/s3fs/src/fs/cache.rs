//! Stat cache (file size, mtime and stored attributes) and type cache (file / directory /
//! absent), each entry with its own expiry. A listing tells sizes but not attributes: its
//! entries vouch for the type only (keeping attributes already known within the stat TTL),
//! and a stat asks S3 for the attributes.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use super::inodes::Kind;
use crate::client::Meta;

/// What is known about a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Known {
    /// A file of this size, mtime (Last-Modified) and stored attributes (stat cache).
    File {
        size: u64,
        mtime: SystemTime,
        meta: Meta,
    },
    /// A directory, with the attributes stored on its marker (none for an implied one).
    Dir(Meta),
    /// Nothing by that name.
    Absent,
}

#[derive(Debug)]
struct Entry {
    kind: Option<Kind>,
    size: u64,
    mtime: SystemTime,
    /// `None` when only a listing told about the entry.
    meta: Option<Meta>,
    /// A file's ETag, as the listing that told about it showed it.
    etag: Option<String>,
    stat_until: Instant,
    type_until: Instant,
}

/// Both caches, keyed by mount-relative path.
#[derive(Debug)]
pub(crate) struct Cache {
    entries: HashMap<String, Entry>,
    /// Directories whose whole listing is known (a listing ended, or this mount made them
    /// empty), until when, and how many entries that listing had: a name not in the type
    /// cache is absent until then, without a request.
    complete: HashMap<String, (Instant, usize)>,
    stat_ttl: Duration,
    type_ttl: Duration,
}

/// How many entries trigger a sweep of expired ones.
const SWEEP_AT: usize = 100_000;

impl Cache {
    pub(crate) fn new(stat_ttl: Duration, type_ttl: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            complete: HashMap::new(),
            stat_ttl,
            type_ttl,
        }
    }

    /// The whole content of directory `dir` (`entries` names) is known as of `since` (when
    /// the listing started: every name it put expires after this does): any other name is
    /// absent for the type TTL from then.
    pub(crate) fn set_complete(&mut self, dir: &str, entries: usize, since: Instant) {
        if self.complete.len() >= SWEEP_AT {
            let now = Instant::now();
            self.complete.retain(|_, (until, _)| *until > now);
        }
        self.complete
            .insert(dir.to_string(), (since + self.type_ttl, entries));
    }

    /// Whether `path` was a file or directory when last told, expired or not.
    pub(crate) fn was_present(&self, path: &str) -> bool {
        self.entries.get(path).is_some_and(|e| e.kind.is_some())
    }

    /// How many entries the last complete listing of `dir` had, if there was one (fresh or
    /// not): a directory that is being filled is worth listing again instead of asking S3
    /// about each new name.
    pub(crate) fn was_complete(&self, dir: &str) -> Option<usize> {
        self.complete.get(dir).map(|(_, n)| *n)
    }

    /// What the caches still vouch for. A file whose stat expired but whose type did not is
    /// reported as unknown: its size has to be asked again.
    pub(crate) fn get(&self, path: &str) -> Option<Known> {
        let now = Instant::now();
        let Some(e) = self.entries.get(path).filter(|e| now < e.type_until) else {
            // Not in a directory whose whole content is known: absent.
            let parent = super::inodes::parent_of(path);
            return self
                .complete
                .get(parent)
                .is_some_and(|(until, _)| now < *until && !path.is_empty())
                .then_some(Known::Absent);
        };
        match (e.kind, e.meta) {
            (None, _) => Some(Known::Absent),
            (Some(_), None) => None,
            (Some(_), Some(_)) if now >= e.stat_until => None,
            (Some(Kind::Dir), Some(meta)) => Some(Known::Dir(meta)),
            (Some(Kind::File), Some(meta)) => Some(Known::File {
                size: e.size,
                mtime: e.mtime,
                meta,
            }),
        }
    }

    /// Records what S3 (or our own successful write) said.
    pub(crate) fn put(&mut self, path: &str, known: Known) {
        self.insert(path, known, true);
    }

    /// Records what a listing said: the type, but not the attributes; for a file, the
    /// version (`etag`) it showed.
    pub(crate) fn put_listed(&mut self, path: &str, known: Known, etag: Option<String>) {
        self.insert(path, known, false);
        if let Some(e) = self.entries.get_mut(path) {
            e.etag = etag;
        }
    }

    /// The size, Last-Modified and ETag a listing showed for file `path`, within the type
    /// TTL (what its remembered attributes are checked against).
    pub(crate) fn listed_version(&self, path: &str) -> Option<(u64, SystemTime, &str)> {
        let e = self.entries.get(path)?;
        // The listing's size and Last-Modified are a stat: trusted for the stat TTL only.
        let now = Instant::now();
        (now < e.type_until && now < e.stat_until && e.kind == Some(Kind::File))
            .then_some(())
            .and(e.etag.as_deref())
            .map(|etag| (e.size, e.mtime, etag))
    }

    fn insert(&mut self, path: &str, known: Known, with_meta: bool) {
        if self.entries.len() >= SWEEP_AT {
            let now = Instant::now();
            self.entries.retain(|_, e| e.type_until > now);
        }
        let now = Instant::now();
        let (kind, size, mtime, meta) = match known {
            Known::File { size, mtime, meta } => (Some(Kind::File), size, mtime, meta),
            Known::Dir(meta) => (Some(Kind::Dir), 0, SystemTime::UNIX_EPOCH, meta),
            Known::Absent => (None, 0, SystemTime::UNIX_EPOCH, Meta::default()),
        };
        let mut meta = with_meta.then_some(meta);
        let mut stat_until = now + self.stat_ttl;
        if !with_meta
            && let Some(old) = self.entries.get(path)
            && old.kind == kind
            && old.meta.is_some()
            && old.stat_until > now
        {
            // A listing does not take back the attributes a HEAD (or our own write) told
            // within the stat TTL.
            meta = old.meta;
            stat_until = old.stat_until;
        }
        self.entries.insert(
            path.to_string(),
            Entry {
                kind,
                size,
                mtime,
                meta,
                etag: None,
                stat_until,
                type_until: now + self.type_ttl,
            },
        );
    }

    /// Forgets `path` and everything under it.
    pub(crate) fn invalidate_tree(&mut self, path: &str) {
        let prefix = format!("{path}/");
        self.entries
            .retain(|p, _| p != path && !p.starts_with(&prefix));
        self.complete
            .retain(|p, _| p != path && !p.starts_with(&prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire() {
        let mut c = Cache::new(Duration::ZERO, Duration::from_secs(60));
        c.put("a", Known::Dir(Meta::default()));
        c.put(
            "f",
            Known::File {
                size: 3,
                mtime: SystemTime::UNIX_EPOCH,
                meta: Meta::default(),
            },
        );
        c.put("n", Known::Absent);
        assert_eq!(c.get("a"), None, "stat expired immediately");
        assert_eq!(c.get("f"), None, "stat expired immediately");
        assert_eq!(c.get("n"), Some(Known::Absent));
        c.invalidate_tree("a");
        assert_eq!(c.get("n"), Some(Known::Absent));
        let mut c = Cache::new(Duration::from_secs(60), Duration::from_secs(60));
        c.put_listed("d", Known::Dir(Meta::default()), None);
        assert_eq!(c.get("d"), None, "a listing does not vouch for attributes");
        let stored = Meta {
            uid: Some(7),
            ..Meta::default()
        };
        c.put("e", Known::Dir(stored));
        c.put_listed("e", Known::Dir(Meta::default()), None);
        assert_eq!(c.get("e"), Some(Known::Dir(stored)), "a listing keeps them");
    }

    #[test]
    fn a_listed_version_is_trusted_for_the_stat_ttl_only() {
        let file = Known::File {
            size: 10,
            mtime: SystemTime::UNIX_EPOCH,
            meta: Meta::default(),
        };
        let mut c = Cache::new(Duration::ZERO, Duration::from_secs(60));
        c.put_listed("f", file, Some("e1".into()));
        assert_eq!(c.listed_version("f"), None, "its size is a stat");
        let mut c = Cache::new(Duration::from_secs(60), Duration::from_secs(60));
        c.put_listed("f", file, Some("e1".into()));
        assert_eq!(
            c.listed_version("f"),
            Some((10, SystemTime::UNIX_EPOCH, "e1"))
        );
        c.put("f", file);
        assert_eq!(
            c.listed_version("f"),
            None,
            "our own write has no listed version"
        );
    }

    #[test]
    fn a_name_missing_from_a_complete_listing_is_absent_until_it_expires() {
        let mut c = Cache::new(Duration::from_secs(60), Duration::from_secs(60));
        assert_eq!(c.get("d/x"), None);
        c.put_listed("d/a", Known::Dir(Meta::default()), None);
        c.set_complete("d", 1, Instant::now());
        assert_eq!(c.get("d/x"), Some(Known::Absent));
        assert_eq!(c.get("d/a"), None, "listed, attributes still to ask");
        assert_eq!(c.get("e/x"), None, "another directory");
        assert_eq!(c.get("d/a/deeper"), None, "not the listed directory");
        assert_eq!(c.was_complete("d"), Some(1));
        c.invalidate_tree("d");
        assert_eq!(c.get("d/x"), None);
        let mut c = Cache::new(Duration::ZERO, Duration::ZERO);
        c.set_complete("d", 0, Instant::now());
        assert_eq!(c.get("d/x"), None, "expired with the type TTL");
        assert_eq!(c.was_complete("d"), Some(0));
    }
}
