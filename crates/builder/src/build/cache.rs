//! The step cache: a step's key is the hash of its parent's key, the instruction as written,
//! and everything else its result depends on (the build args in scope, the image config it
//! runs under, content hashes of COPY sources, secret and cache-mount ids: never a secret's
//! value, never a file's mtime). The index maps keys to the layer the step produced; an entry
//! whose layer is no longer in the store is a miss.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::BuildError;
use crate::store::{ImageStore, LayerInfo};

/// A step's cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key([u8; 32]);

impl Key {
    /// The key of a stage's start from `base` (an image's manifest digest, a stage's key, or
    /// `scratch`).
    pub(crate) fn base(base: &str) -> Self {
        Self::of(&[b"FROM", base.as_bytes()])
    }

    /// The key of a step after `self` whose result depends on `parts`.
    pub(crate) fn then(&self, parts: &[&[u8]]) -> Self {
        let mut all: Vec<&[u8]> = vec![&self.0];
        all.extend_from_slice(parts);
        Self::of(&all)
    }

    fn of(parts: &[&[u8]]) -> Self {
        let mut h = Sha256::new();
        for p in parts {
            // Length-prefixed, so that parts cannot run into each other.
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
        Self(h.finalize().into())
    }

    pub(crate) fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What a cached step produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// Its layer; `None` when the step changed no file.
    pub layer: Option<LayerInfo>,
}

/// The index, one small file per key under `<cache>/steps/`.
pub(crate) struct StepCache {
    dir: PathBuf,
}

impl StepCache {
    pub(crate) fn open(cache_root: &Path) -> Result<Self, BuildError> {
        let dir = cache_root.join("steps");
        std::fs::create_dir_all(&dir).map_err(BuildError::io("creating", &dir))?;
        Ok(Self { dir })
    }

    /// The entry of `key`, if its layer is still in `store`.
    pub(crate) fn get(&self, key: &Key, store: &ImageStore) -> Option<Entry> {
        let text = std::fs::read(self.dir.join(key.hex())).ok()?;
        let entry: Entry = serde_json::from_slice(&text).ok()?;
        match &entry.layer {
            Some(l) if !store.has_layer(&l.diff_id) => None,
            _ => Some(entry),
        }
    }

    /// Records `entry` under `key` (written whole, then renamed into place).
    pub(crate) fn put(&self, key: &Key, entry: &Entry) -> Result<(), BuildError> {
        let path = self.dir.join(key.hex());
        let tmp = self.dir.join(format!(".{}.tmp", key.hex()));
        let json = serde_json::to_vec(entry).map_err(|e| BuildError::Io {
            what: "encoding the cache entry",
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&tmp, json).map_err(BuildError::io("writing", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(BuildError::io("renaming into", &path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_every_part_and_their_boundaries() {
        let b = Key::base("sha256:aa");
        assert_eq!(b.then(&[b"RUN x"]), b.then(&[b"RUN x"]));
        assert_ne!(b.then(&[b"RUN x"]), b.then(&[b"RUN y"]));
        assert_ne!(b.then(&[b"ab", b"c"]), b.then(&[b"a", b"bc"]));
        assert_ne!(Key::base("a").then(&[b"x"]), Key::base("b").then(&[b"x"]));
        assert_eq!(b.hex().len(), 64);
    }
}
