//! Users and groups of the sandbox, read from its `/etc/passwd` and `/etc/group` (paths come
//! from the config so tests can point them at temp files). The files are re-read on every
//! lookup: they are small, and users added at run time must be found.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A sandbox user that processes run as and files are owned by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: PathBuf,
    /// Supplementary group ids (from `/etc/group` member lists), primary group included.
    pub groups: Vec<u32>,
}

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

    /// Looks a user up by name.
    pub fn lookup(&self, name: &str) -> Result<User, UserError> {
        let text = std::fs::read_to_string(&self.passwd).map_err(|source| UserError::Read {
            path: self.passwd.clone(),
            source,
        })?;
        let entry = text
            .lines()
            .filter_map(parse_passwd_line)
            .find(|(n, ..)| *n == name)
            .ok_or_else(|| UserError::Unknown(name.to_owned()))?;
        let (name, uid, gid, home) = entry;
        let mut groups = vec![gid];
        // A missing group file only loses supplementary groups.
        if let Ok(text) = std::fs::read_to_string(&self.group) {
            for (_, id, members) in text.lines().filter_map(parse_group_line) {
                if members.contains(&name) && !groups.contains(&id) {
                    groups.push(id);
                }
            }
        }
        Ok(User {
            name: name.to_owned(),
            uid,
            gid,
            home: PathBuf::from(home),
            groups,
        })
    }

    /// A snapshot of id → name maps, for owner and group names in directory listings.
    pub fn names(&self) -> Names {
        let mut names = Names::default();
        if let Ok(text) = std::fs::read_to_string(&self.passwd) {
            for (n, uid, ..) in text.lines().filter_map(parse_passwd_line) {
                names.users.entry(uid).or_insert_with(|| n.to_owned());
            }
        }
        if let Ok(text) = std::fs::read_to_string(&self.group) {
            for (n, gid, _) in text.lines().filter_map(parse_group_line) {
                names.groups.entry(gid).or_insert_with(|| n.to_owned());
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

/// `name:pw:uid:gid:gecos:home:shell` → (name, uid, gid, home).
fn parse_passwd_line(line: &str) -> Option<(&str, u32, u32, &str)> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 7 || f[0].is_empty() || f[0].starts_with('#') {
        return None;
    }
    Some((f[0], f[2].parse().ok()?, f[3].parse().ok()?, f[5]))
}

/// `name:pw:gid:member,member` → (name, gid, members).
fn parse_group_line(line: &str) -> Option<(&str, u32, Vec<&str>)> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 4 || f[0].is_empty() || f[0].starts_with('#') {
        return None;
    }
    let members = f[3].split(',').filter(|m| !m.is_empty()).collect();
    Some((f[0], f[2].parse().ok()?, members))
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
