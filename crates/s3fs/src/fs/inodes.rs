//! Inode numbers for paths. Paths are relative to the mount root (`""` is the root), with
//! `/` separators and no leading or trailing `/`.

use std::collections::HashMap;

/// File or directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file (one object).
    File,
    /// A directory (a marker object `dir/`, or implied by keys under `dir/`).
    Dir,
}

/// The root inode.
pub(crate) const ROOT: u64 = 1;

#[derive(Debug)]
struct Node {
    path: String,
    kind: Kind,
}

/// Path ↔ inode table. Inodes are never reused while mounted, so a stale inode number can
/// only ever resolve to its own path.
#[derive(Debug)]
pub(crate) struct Inodes {
    by_ino: HashMap<u64, Node>,
    by_path: HashMap<String, u64>,
    next: u64,
}

impl Inodes {
    pub(crate) fn new() -> Self {
        let mut t = Self {
            by_ino: HashMap::new(),
            by_path: HashMap::new(),
            next: ROOT + 1,
        };
        t.by_ino.insert(
            ROOT,
            Node {
                path: String::new(),
                kind: Kind::Dir,
            },
        );
        t.by_path.insert(String::new(), ROOT);
        t
    }

    /// The inode for `path`, allocating one if needed, and records its kind.
    pub(crate) fn get_or_insert(&mut self, path: &str, kind: Kind) -> u64 {
        if let Some(&ino) = self.by_path.get(path) {
            if let Some(n) = self.by_ino.get_mut(&ino) {
                n.kind = kind;
            }
            return ino;
        }
        let ino = self.next;
        self.next += 1;
        self.by_ino.insert(
            ino,
            Node {
                path: path.to_string(),
                kind,
            },
        );
        self.by_path.insert(path.to_string(), ino);
        ino
    }

    /// Path and kind of `ino`.
    pub(crate) fn get(&self, ino: u64) -> Option<(String, Kind)> {
        self.by_ino.get(&ino).map(|n| (n.path.clone(), n.kind))
    }

    /// The inode of `path`, if one was handed out.
    pub(crate) fn ino_of(&self, path: &str) -> Option<u64> {
        self.by_path.get(path).copied()
    }

    /// Forgets the name `path` (its inode keeps resolving to the old path, which no longer
    /// exists).
    pub(crate) fn remove_path(&mut self, path: &str) {
        self.by_path.remove(path);
    }

    /// Moves `from` (and, for a directory, everything under it) to `to`, keeping inode
    /// numbers. Whatever was at `to` loses its name.
    pub(crate) fn rename(&mut self, from: &str, to: &str) {
        let child_prefix = format!("{from}/");
        let moved: Vec<(String, u64)> = self
            .by_path
            .iter()
            .filter(|(p, _)| p.as_str() == from || p.starts_with(&child_prefix))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        let dest_prefix = format!("{to}/");
        let stale: Vec<String> = self
            .by_path
            .keys()
            .filter(|p| p.as_str() == to || p.starts_with(&dest_prefix))
            .cloned()
            .collect();
        for p in stale {
            self.by_path.remove(&p);
        }
        for (old, ino) in moved {
            self.by_path.remove(&old);
            let new = format!("{to}{}", &old[from.len()..]);
            if let Some(n) = self.by_ino.get_mut(&ino) {
                n.path.clone_from(&new);
            }
            self.by_path.insert(new, ino);
        }
    }
}

/// `parent/name` (or `name` at the root).
pub(crate) fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// The parent path of `path` (`""` for top-level entries).
pub(crate) fn parent_of(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_moves_children_and_keeps_inodes() {
        let mut t = Inodes::new();
        let d = t.get_or_insert("d", Kind::Dir);
        let f = t.get_or_insert("d/f", Kind::File);
        let other = t.get_or_insert("e", Kind::Dir);
        t.rename("d", "e");
        assert_eq!(t.ino_of("e"), Some(d));
        assert_eq!(t.ino_of("e/f"), Some(f));
        assert_eq!(t.get(f).map(|x| x.0), Some("e/f".into()));
        assert_eq!(t.ino_of("d"), None);
        assert_ne!(t.ino_of("e"), Some(other));
        assert_eq!(parent_of("a/b/c"), "a/b");
        assert_eq!(parent_of("a"), "");
        assert_eq!(join("", "a"), "a");
    }
}
