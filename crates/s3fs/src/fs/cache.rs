//! Stat cache (file size and mtime) and type cache (file / directory / absent), each entry
//! with its own expiry.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use super::inodes::Kind;

/// What is known about a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Known {
    /// A file of this size and mtime (both from the stat cache).
    File { size: u64, mtime: SystemTime },
    /// A directory.
    Dir,
    /// Nothing by that name.
    Absent,
}

#[derive(Debug)]
struct Entry {
    kind: Option<Kind>,
    size: u64,
    mtime: SystemTime,
    stat_until: Instant,
    type_until: Instant,
}

/// Both caches, keyed by mount-relative path.
#[derive(Debug)]
pub(crate) struct Cache {
    entries: HashMap<String, Entry>,
    stat_ttl: Duration,
    type_ttl: Duration,
}

/// How many entries trigger a sweep of expired ones.
const SWEEP_AT: usize = 100_000;

impl Cache {
    pub(crate) fn new(stat_ttl: Duration, type_ttl: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            stat_ttl,
            type_ttl,
        }
    }

    /// What the caches still vouch for. A file whose stat expired but whose type did not is
    /// reported as unknown: its size has to be asked again.
    pub(crate) fn get(&self, path: &str) -> Option<Known> {
        let e = self.entries.get(path)?;
        let now = Instant::now();
        if now >= e.type_until {
            return None;
        }
        match e.kind {
            None => Some(Known::Absent),
            Some(Kind::Dir) => Some(Known::Dir),
            Some(Kind::File) if now < e.stat_until => Some(Known::File {
                size: e.size,
                mtime: e.mtime,
            }),
            Some(Kind::File) => None,
        }
    }

    /// Records what S3 (or our own successful write) said.
    pub(crate) fn put(&mut self, path: &str, known: Known) {
        if self.entries.len() >= SWEEP_AT {
            let now = Instant::now();
            self.entries.retain(|_, e| e.type_until > now);
        }
        let now = Instant::now();
        let (kind, size, mtime) = match known {
            Known::File { size, mtime } => (Some(Kind::File), size, mtime),
            Known::Dir => (Some(Kind::Dir), 0, SystemTime::UNIX_EPOCH),
            Known::Absent => (None, 0, SystemTime::UNIX_EPOCH),
        };
        self.entries.insert(
            path.to_string(),
            Entry {
                kind,
                size,
                mtime,
                stat_until: now + self.stat_ttl,
                type_until: now + self.type_ttl,
            },
        );
    }

    /// Forgets `path` and everything under it.
    pub(crate) fn invalidate_tree(&mut self, path: &str) {
        let prefix = format!("{path}/");
        self.entries
            .retain(|p, _| p != path && !p.starts_with(&prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire() {
        let mut c = Cache::new(Duration::ZERO, Duration::from_secs(60));
        c.put("a", Known::Dir);
        c.put(
            "f",
            Known::File {
                size: 3,
                mtime: SystemTime::UNIX_EPOCH,
            },
        );
        c.put("n", Known::Absent);
        assert_eq!(c.get("a"), Some(Known::Dir));
        assert_eq!(c.get("f"), None, "stat expired immediately");
        assert_eq!(c.get("n"), Some(Known::Absent));
        c.invalidate_tree("a");
        assert_eq!(c.get("a"), None);
    }
}
