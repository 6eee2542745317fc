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
    /// How many times the kernel was handed this inode (lookup, create, readdirplus) and has
    /// not forgotten it yet.
    lookups: u64,
}

/// Path ↔ inode table. Inodes are never reused while mounted, so a stale inode number can
/// only ever resolve to its own path. An inode the kernel forgot (FORGET: it dropped the
/// inode from its cache) leaves the table, so the table holds what the kernel holds, not
/// every name ever seen.
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
                lookups: 1,
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
                lookups: 0,
            },
        );
        self.by_path.insert(path.to_string(), ino);
        crate::stats::inodes(self.by_ino.len());
        ino
    }

    /// The kernel was handed `ino`, named `path`, once more. When a FORGET of its earlier
    /// lookups took it out of the table after the reply's inode was chosen, it comes back
    /// under the same number: the kernel holds that number now.
    pub(crate) fn looked_up(&mut self, ino: u64, path: &str, kind: Kind) {
        if let Some(n) = self.by_ino.get_mut(&ino) {
            n.lookups += 1;
            return;
        }
        self.by_ino.insert(
            ino,
            Node {
                path: path.to_string(),
                kind,
                lookups: 1,
            },
        );
        self.by_path.entry(path.to_string()).or_insert(ino);
        crate::stats::inodes(self.by_ino.len());
    }

    /// The kernel forgot `n` of its lookups of `ino`; at none left the inode leaves the table
    /// (never the root). Returns whether it did.
    pub(crate) fn forget(&mut self, ino: u64, n: u64) -> bool {
        if ino == ROOT {
            return false;
        }
        let Some(node) = self.by_ino.get_mut(&ino) else {
            return false;
        };
        node.lookups = node.lookups.saturating_sub(n);
        if node.lookups > 0 {
            return false;
        }
        if let Some(node) = self.by_ino.remove(&ino)
            && self.by_path.get(&node.path) == Some(&ino)
        {
            self.by_path.remove(&node.path);
        }
        crate::stats::inodes(self.by_ino.len());
        true
    }

    /// How many inodes the table holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_ino.len()
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

    #[test]
    fn forgotten_inodes_leave_the_table_and_their_names_get_new_ones() {
        let mut t = Inodes::new();
        let f = t.get_or_insert("f", Kind::File);
        t.looked_up(f, "f", Kind::File);
        t.looked_up(f, "f", Kind::File);
        assert!(!t.forget(f, 1));
        assert_eq!(t.get(f).map(|x| x.0), Some("f".into()));
        assert!(t.forget(f, 1));
        assert_eq!(t.get(f), None);
        assert_eq!(t.ino_of("f"), None);
        assert_eq!(t.len(), 1);
        let again = t.get_or_insert("f", Kind::File);
        assert_ne!(again, f, "inode numbers are never reused");
        // A renamed-over name keeps the new inode when the old one is forgotten.
        let g = t.get_or_insert("g", Kind::File);
        t.looked_up(g, "g", Kind::File);
        t.rename("f", "g");
        assert!(t.forget(g, 1));
        assert_eq!(t.ino_of("g"), Some(again));
        assert!(!t.forget(ROOT, 1));
        assert!(t.get(ROOT).is_some());
        // A lookup whose inode was forgotten between choosing it and the reply brings it back.
        let h = t.get_or_insert("h", Kind::Dir);
        assert!(t.forget(h, 0));
        t.looked_up(h, "h", Kind::Dir);
        assert_eq!(t.get(h), Some(("h".into(), Kind::Dir)));
        assert_eq!(t.ino_of("h"), Some(h));
    }
}
