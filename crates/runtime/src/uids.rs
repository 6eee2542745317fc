//! Allocation of host uid ranges: every sandbox gets its own 65 536 ids, so that two
//! sandboxes never share an owner on the host, and a file or process of one is foreign to
//! the other even where they meet (a shared bind mount, a signal).
//!
//! A range is claimed by creating `<claims>/<slot>` with `O_EXCL` (the host-wide
//! `RuntimeConfig::uid_claims_dir`, `/run/bulkhead/uids`), which is atomic across processes
//! and runtimes and survives restarts of the server (not of the host, which frees them all).

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::error::RuntimeError;

/// Ids per sandbox.
pub const RANGE: u32 = 65_536;

/// A claimed range; released by [`UidSlot::release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidSlot {
    /// Slot number.
    pub slot: u32,
    /// First host id of the range (root inside).
    pub first: u32,
    file: PathBuf,
}

impl UidSlot {
    /// Claims the first free slot, starting the search at `hint`.
    pub fn claim(
        dir: &Path,
        base: u32,
        slots: u32,
        hint: u32,
        owner: &str,
    ) -> Result<Self, RuntimeError> {
        std::fs::create_dir_all(dir).map_err(|source| RuntimeError::StateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        for i in 0..slots {
            let slot = (hint.wrapping_add(i)) % slots;
            let file = dir.join(slot.to_string());
            match OpenOptions::new().write(true).create_new(true).open(&file) {
                Ok(mut f) => {
                    let _ = f.write_all(owner.as_bytes());
                    return Ok(Self {
                        slot,
                        first: base + slot * RANGE,
                        file,
                    });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(RuntimeError::StateDir { path: file, source }),
            }
        }
        Err(RuntimeError::UidsExhausted(slots))
    }

    /// Rebuilds the handle of a slot claimed earlier (after a restart).
    pub fn existing(dir: &Path, base: u32, slot: u32) -> Self {
        Self {
            slot,
            first: base + slot * RANGE,
            file: dir.join(slot.to_string()),
        }
    }

    /// Frees the slot. Idempotent.
    pub fn release(&self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_exclusive_and_reusable() {
        let dir = tempfile::tempdir().unwrap();
        let a = UidSlot::claim(dir.path(), 1000, 2, 0, "a").unwrap();
        let b = UidSlot::claim(dir.path(), 1000, 2, 0, "b").unwrap();
        assert_ne!(a.slot, b.slot);
        assert_eq!(b.first, 1000 + b.slot * RANGE);
        assert!(matches!(
            UidSlot::claim(dir.path(), 1000, 2, 0, "c"),
            Err(RuntimeError::UidsExhausted(2))
        ));
        a.release();
        assert_eq!(
            UidSlot::claim(dir.path(), 1000, 2, 0, "d").unwrap().slot,
            a.slot
        );
    }
}
