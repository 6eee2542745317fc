//! `EntryInfo`: what Stat, ListDir, MakeDir, Move and watch events report about a path.

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use serde::Serialize;

use crate::connect::json::{rfc3339, ser_i64_str};
use crate::sys;
use crate::users::Names;

/// Prefix of the extended attributes that hold E2B file metadata.
pub const METADATA_XATTR_PREFIX: &str = "user.e2b.";

/// One filesystem entry as sent on the wire.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EntryInfo {
    /// Base name.
    pub name: String,
    /// `FILE_TYPE_FILE`, `FILE_TYPE_DIRECTORY`, `FILE_TYPE_SYMLINK` or `FILE_TYPE_UNSPECIFIED`;
    /// for a symlink, the type of its target (unspecified if dangling).
    #[serde(rename = "type")]
    pub file_type: &'static str,
    /// Absolute path.
    pub path: String,
    /// Size in bytes (int64 → JSON string).
    #[serde(serialize_with = "ser_i64_str")]
    pub size: i64,
    /// Permission bits (of the target, for a symlink).
    pub mode: u32,
    /// Go `FileMode` string of the entry itself (`-rw-r--r--`, `drwxr-xr-x`, `Lrwxrwxrwx`).
    pub permissions: String,
    /// Owner name.
    pub owner: String,
    /// Group name.
    pub group: String,
    /// Modification time, RFC 3339.
    pub modified_time: String,
    /// The resolved target of a symlink.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symlink_target: Option<String>,
    /// `user.e2b.*` extended attributes, prefix stripped.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Whether the entry is a symlink.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_symlink: bool,
}

fn type_name(meta: &Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_dir() {
        "FILE_TYPE_DIRECTORY"
    } else if ft.is_symlink() {
        "FILE_TYPE_SYMLINK"
    } else if ft.is_file() {
        "FILE_TYPE_FILE"
    } else {
        "FILE_TYPE_UNSPECIFIED"
    }
}

/// Describes `path` (not following a final symlink, see [`EntryInfo::file_type`]).
pub fn entry_info(path: &Path, names: &Names) -> io::Result<EntryInfo> {
    let lmeta = std::fs::symlink_metadata(path)?;
    let is_symlink = lmeta.file_type().is_symlink();
    let (file_type, mode, symlink_target) = if is_symlink {
        let target = std::fs::canonicalize(path)
            .or_else(|_| std::fs::read_link(path))
            .ok();
        match std::fs::metadata(path) {
            Ok(t) => (type_name(&t), t.permissions().mode() & 0o777, target),
            Err(_) => ("FILE_TYPE_UNSPECIFIED", 0, target),
        }
    } else {
        (type_name(&lmeta), lmeta.permissions().mode() & 0o777, None)
    };
    Ok(EntryInfo {
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".to_owned()),
        file_type,
        path: path.display().to_string(),
        size: i64::try_from(lmeta.len()).unwrap_or(i64::MAX),
        mode,
        permissions: go_mode_string(&lmeta),
        owner: names.user(lmeta.uid()),
        group: names.group(lmeta.gid()),
        modified_time: rfc3339(
            lmeta.mtime(),
            u32::try_from(lmeta.mtime_nsec()).unwrap_or(0),
        ),
        symlink_target: symlink_target.map(|t| t.display().to_string()),
        metadata: read_metadata(path),
        is_symlink,
    })
}

/// The `user.e2b.*` attributes of `path`; unreadable attributes are skipped.
pub fn read_metadata(path: &Path) -> BTreeMap<String, String> {
    let Ok(names) = sys::list_xattrs(path) else {
        return BTreeMap::new();
    };
    names
        .iter()
        .filter_map(|n| {
            let key = n.strip_prefix(METADATA_XATTR_PREFIX)?;
            let value = sys::get_xattr(path, n).ok()?;
            Some((key.to_owned(), String::from_utf8_lossy(&value).into_owned()))
        })
        .collect()
}

/// Go's `os.FileMode.String()`: type letters, then `rwxrwxrwx`.
fn go_mode_string(meta: &Metadata) -> String {
    let ft = meta.file_type();
    let mode = meta.permissions().mode();
    let mut s = String::new();
    if ft.is_dir() {
        s.push('d');
    }
    if ft.is_symlink() {
        s.push('L');
    }
    if ft.is_block_device() {
        s.push('D');
    }
    if ft.is_fifo() {
        s.push('p');
    }
    if ft.is_socket() {
        s.push('S');
    }
    if mode & 0o4000 != 0 {
        s.push('u');
    }
    if mode & 0o2000 != 0 {
        s.push('g');
    }
    if ft.is_char_device() {
        s.push_str("Dc");
    }
    if mode & 0o1000 != 0 {
        s.push('t');
    }
    if s.is_empty() {
        s.push('-');
    }
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if mode & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_files_dirs_and_symlinks() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let f = dir.path().join("a.txt");
        std::fs::write(&f, "hello")?;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644))?;
        let names = Names::default();
        let e = entry_info(&f, &names)?;
        assert_eq!(
            (
                e.file_type,
                e.size,
                e.mode,
                e.permissions.as_str(),
                e.name.as_str()
            ),
            ("FILE_TYPE_FILE", 5, 0o644, "-rw-r--r--", "a.txt")
        );
        let json = serde_json::to_value(&e)?;
        assert_eq!(json["size"], "5");
        let l = dir.path().join("link");
        std::os::unix::fs::symlink(&f, &l)?;
        let e = entry_info(&l, &names)?;
        assert_eq!(
            (e.file_type, e.is_symlink, e.permissions.as_str()),
            ("FILE_TYPE_FILE", true, "Lrwxrwxrwx")
        );
        assert_eq!(
            e.symlink_target,
            Some(std::fs::canonicalize(&f)?.display().to_string())
        );
        let d = entry_info(dir.path(), &names)?;
        assert!(d.permissions.starts_with('d'));
        Ok(())
    }
}
