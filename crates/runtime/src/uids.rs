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

/// How old a claim without its sandbox must be before it is taken back: a launch claims
/// its range a few milliseconds before it makes the sandbox's directory.
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Takes back the claims under `dir` that nothing uses any more: claims whose owner
/// (`<sandbox id> <state dir>`) has no sandbox directory (`<state dir>/sandboxes/<id>`, gone
/// with a crashed launch or a deleted data dir), older than [`STALE_AFTER`], and whose range
/// (from `base`) no process on the host runs in. Such claims used to stay until the host
/// rebooted. Returns how many were taken back.
pub fn reclaim_stale(dir: &Path, base: u32) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut in_use: Option<std::collections::BTreeSet<u32>> = None;
    let mut taken = 0;
    for e in entries.filter_map(|e| e.ok()) {
        let Some(slot) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(owner) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let Some((id, state)) = owner.split_once(' ') else {
            continue;
        };
        if Path::new(state).join("sandboxes").join(id).exists() {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= STALE_AFTER);
        if !old {
            continue;
        }
        let used = in_use.get_or_insert_with(|| slots_with_processes(base));
        if used.contains(&slot) {
            continue;
        }
        if std::fs::remove_file(e.path()).is_ok() {
            tracing::info!(
                slot,
                sandbox_id = id,
                state_dir = state,
                "stale uid claim taken back"
            );
            taken += 1;
        }
    }
    taken
}

/// The slots (from `base`) whose ids some process on the host runs as.
fn slots_with_processes(base: u32) -> std::collections::BTreeSet<u32> {
    let mut out = std::collections::BTreeSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.filter_map(|e| e.ok()) {
        let Ok(status) = std::fs::read_to_string(p.path().join("status")) else {
            continue;
        };
        for line in status
            .lines()
            .filter(|l| l.starts_with("Uid:") || l.starts_with("Gid:"))
        {
            for id in line
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse::<u32>().ok())
            {
                if id >= base {
                    out.insert((id - base) / RANGE);
                }
            }
        }
    }
    out
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

    #[test]
    fn only_old_claims_of_sandboxes_that_are_gone_are_taken_back() {
        let dir = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(state.path().join("sandboxes/alive")).unwrap();
        let old = std::time::SystemTime::now() - STALE_AFTER * 2;
        // A range far above any process on the host.
        let base = 3_000_000_000;
        let claim = |slot: u32, owner: String, aged: bool| {
            let path = dir.path().join(slot.to_string());
            std::fs::write(&path, owner).unwrap();
            if aged {
                std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_modified(old)
                    .unwrap();
            }
        };
        let st = state.path().display();
        claim(0, format!("gone {st}"), true);
        claim(1, format!("alive {st}"), true);
        claim(2, format!("young {st}"), false);
        claim(3, "x /no/such/state/dir".to_string(), true);
        assert_eq!(reclaim_stale(dir.path(), base), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["1", "2"]);
        // A range some process runs in is kept even when its sandbox looks gone: this
        // test's own uid (root's 0) is slot 0 from base 0.
        claim(0, format!("gone {st}"), true);
        assert_eq!(reclaim_stale(dir.path(), 0), 0);
    }
}
