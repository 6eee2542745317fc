//! Users and groups of the sandbox, read from its `/etc/passwd` and `/etc/group` (paths come
//! from the config so tests can point them at temp files) and parsed by `bulkhead_spawn::users`,
//! the parser every process starter shares. The files are re-read on every lookup: they are
//! small, and users added at run time must be found.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bulkhead_spawn::users::{self as db, group_entries, passwd_entries};

/// A sandbox user that processes run as and files are owned by.
pub use bulkhead_spawn::User;

/// A user lookup failure.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// No passwd entry with that name.
    #[error("invalid username: '{0}'")]
    Unknown(String),
    /// The passwd file could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Access to the sandbox's user database.
#[derive(Debug, Clone)]
pub struct UserDb {
    passwd: PathBuf,
    group: PathBuf,
}

impl UserDb {
    /// Uses the given passwd and group files.
    pub fn new(passwd: &Path, group: &Path) -> Self {
        Self {
            passwd: passwd.to_owned(),
            group: group.to_owned(),
        }
    }

    /// Looks a user up by name (supplementary groups from the group file; a missing group
    /// file only loses them).
    pub fn lookup(&self, name: &str) -> Result<User, UserError> {
        let passwd = std::fs::read_to_string(&self.passwd).map_err(|source| UserError::Read {
            path: self.passwd.clone(),
            source,
        })?;
        let group = std::fs::read_to_string(&self.group).unwrap_or_default();
        db::lookup(name, &passwd, &group).map_err(|_| UserError::Unknown(name.to_owned()))
    }

    /// A snapshot of id → name maps, for owner and group names in directory listings.
    pub fn names(&self) -> Names {
        let mut names = Names::default();
        if let Ok(text) = std::fs::read_to_string(&self.passwd) {
            for e in passwd_entries(&text) {
                names
                    .users
                    .entry(e.uid)
                    .or_insert_with(|| e.name.to_owned());
            }
        }
        if let Ok(text) = std::fs::read_to_string(&self.group) {
            for e in group_entries(&text) {
                names
                    .groups
                    .entry(e.gid)
                    .or_insert_with(|| e.name.to_owned());
            }
        }
        names
    }
}

/// uid/gid → name maps; unknown ids print as numbers.
#[derive(Debug, Default, Clone)]
pub struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    /// The user name of `uid`, or the number.
    pub fn user(&self, uid: u32) -> String {
        self.users
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }

    /// The group name of `gid`, or the number.
    pub fn group(&self, gid: u32) -> String {
        self.groups
            .get(&gid)
            .cloned()
            .unwrap_or_else(|| gid.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_with_groups_and_bad_lines() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let (p, g) = (dir.path().join("passwd"), dir.path().join("group"));
        std::fs::write(
            &p,
            "garbage\nroot:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/bash\n",
        )?;
        std::fs::write(&g, "user:x:1000:\nsudo:x:27:user,other\nbad:x:zz:user\n")?;
        let db = UserDb::new(&p, &g);
        let u = db.lookup("user")?;
        assert_eq!(
            (u.uid, u.gid, u.groups.clone()),
            (1000, 1000, vec![1000, 27])
        );
        assert_eq!(u.home, PathBuf::from("/home/user"));
        assert!(matches!(db.lookup("nobody"), Err(UserError::Unknown(n)) if n == "nobody"));
        let names = db.names();
        assert_eq!(
            (names.user(0), names.group(27), names.user(4242)),
            ("root".into(), "sudo".into(), "4242".into())
        );
        Ok(())
    }
}
