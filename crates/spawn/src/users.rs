//! Users and groups as the sandbox's own `/etc/passwd` and `/etc/group` define them: one
//! parser for both files, and the two lookups built on it.
//!
//! Syntax accepted (the rest of a file still counts when a line is refused):
//! - a passwd line is `name:password:uid:gid:gecos:home:shell`, a group line
//!   `name:password:gid:member,member`; fields beyond those are ignored;
//! - a line with fewer fields, an empty name, or a uid/gid that is not a decimal `u32` is
//!   skipped, as are blank lines and lines starting with `#`; a trailing `\r` is dropped;
//! - the first line with a given name (or uid) wins;
//! - an empty member list, and empty items in it (`a,,b`), are allowed.
//!
//! Supplementary groups are the primary group first, then every group whose member list
//! names the user, in file order, without duplicates.

use std::path::PathBuf;

/// The shell of a user whose passwd entry names none, or who has no entry (as `login(1)`).
pub const FALLBACK_SHELL: &str = "/bin/sh";

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name (or the number, for a uid the sandbox does not know).
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids, primary group first.
    pub groups: Vec<u32>,
    /// Home directory.
    pub home: PathBuf,
    /// Login shell ([`FALLBACK_SHELL`] when the entry names none).
    pub shell: String,
}

/// A name or number the user database does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// No passwd entry with that name (or uid).
    #[error("unknown user {0:?}: not in the sandbox's /etc/passwd")]
    UnknownUser(String),
    /// No group entry with that name.
    #[error("unknown group {0:?}: not in the sandbox's /etc/group")]
    UnknownGroup(String),
}

/// One usable line of a passwd file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswdEntry<'a> {
    /// Login name.
    pub name: &'a str,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: &'a str,
    /// Login shell (may be empty).
    pub shell: &'a str,
}

/// One usable line of a group file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry<'a> {
    /// Group name.
    pub name: &'a str,
    /// Group id.
    pub gid: u32,
    /// Member names.
    pub members: Vec<&'a str>,
}

fn fields(line: &str) -> Option<Vec<&str>> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let f: Vec<&str> = line.split(':').collect();
    (!f[0].is_empty()).then_some(f)
}

/// The usable entries of passwd text, in file order.
pub fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let f = fields(line)?;
        if f.len() < 7 {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
            shell: f[6],
        })
    })
}

/// The usable entries of group text, in file order.
pub fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let f = fields(line)?;
        if f.len() < 4 {
            return None;
        }
        Some(GroupEntry {
            name: f[0],
            gid: f[2].parse().ok()?,
            members: f[3].split(',').filter(|m| !m.is_empty()).collect(),
        })
    })
}

fn with_groups(mut user: User, group: &str) -> User {
    user.groups = vec![user.gid];
    for g in group_entries(group) {
        if g.members.contains(&user.name.as_str()) && !user.groups.contains(&g.gid) {
            user.groups.push(g.gid);
        }
    }
    user
}

fn from_entry(e: &PasswdEntry<'_>) -> User {
    User {
        name: e.name.to_owned(),
        uid: e.uid,
        gid: e.gid,
        groups: Vec::new(),
        home: PathBuf::from(e.home),
        shell: if e.shell.is_empty() {
            FALLBACK_SHELL.to_owned()
        } else {
            e.shell.to_owned()
        },
    }
}

fn root() -> User {
    User {
        name: "root".into(),
        uid: 0,
        gid: 0,
        groups: Vec::new(),
        home: PathBuf::from("/root"),
        shell: FALLBACK_SHELL.into(),
    }
}

/// Looks a user up by login name only (what the E2B protocol names users by).
pub fn lookup(name: &str, passwd: &str, group: &str) -> Result<User, UserError> {
    let entry = passwd_entries(passwd)
        .find(|e| e.name == name)
        .ok_or_else(|| UserError::UnknownUser(name.to_owned()))?;
    Ok(with_groups(from_entry(&entry), group))
}

/// Resolves `spec` as `docker run --user` does: `None` is root, else a name, a uid, or
/// `user:group` where either side is a name or a number.
///
/// A name is looked up first, then a number as a uid. A uid the passwd file does not know is
/// still accepted (name = the number, gid = the uid unless given, home `/`); so is root when
/// the file has no root entry. A group given by name must be in the group file.
pub fn resolve(spec: Option<&str>, passwd: &str, group: &str) -> Result<User, UserError> {
    let spec = spec.unwrap_or("root");
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let numeric: Option<u32> = user_part.parse().ok();
    let entry = passwd_entries(passwd)
        .find(|e| e.name == user_part)
        .or_else(|| numeric.and_then(|n| passwd_entries(passwd).find(|e| e.uid == n)));
    let mut user = match (entry, numeric) {
        (Some(e), _) => from_entry(&e),
        (None, Some(0)) => root(),
        (None, Some(n)) => User {
            name: n.to_string(),
            uid: n,
            gid: n,
            groups: Vec::new(),
            home: PathBuf::from("/"),
            shell: FALLBACK_SHELL.into(),
        },
        (None, None) if user_part == "root" => root(),
        (None, None) => return Err(UserError::UnknownUser(user_part.to_owned())),
    };
    if let Some(g) = group_part {
        user.gid = match g.parse() {
            Ok(n) => n,
            Err(_) => group_entries(group)
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| UserError::UnknownGroup(g.to_owned()))?,
        };
    }
    Ok(with_groups(user, group))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        user:x:1000:1000::/home/user:/bin/bash\n\
        svc:x:998:998:service:/srv:\n";
    const GROUP: &str = "root:x:0:\nuser:x:1000:\naudio:x:29:user\nsudo:x:27:svc,user\n";

    #[test]
    fn names_numbers_and_groups() {
        let u = resolve(Some("user"), PASSWD, GROUP).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.home.to_str()),
            (1000, 1000, Some("/home/user"))
        );
        assert_eq!(
            (u.groups.clone(), u.shell.as_str()),
            (vec![1000, 29, 27], "/bin/bash")
        );
        assert_eq!(lookup("user", PASSWD, GROUP).unwrap(), u);
        assert_eq!(resolve(Some("1000"), PASSWD, GROUP).unwrap().name, "user");
        let root = resolve(None, PASSWD, GROUP).unwrap();
        assert_eq!((root.uid, root.groups.clone()), (0, vec![0]));
        let anon = resolve(Some("4242:7"), PASSWD, GROUP).unwrap();
        assert_eq!((anon.name.as_str(), anon.uid, anon.gid), ("4242", 4242, 7));
        assert_eq!(anon.home.to_str(), Some("/"));
        let by_group_name = resolve(Some("user:audio"), PASSWD, GROUP).unwrap();
        assert_eq!(
            (by_group_name.gid, by_group_name.groups),
            (29, vec![29, 27])
        );
        // No passwd file at all: root still resolves, nobody else by name.
        assert_eq!(resolve(Some("root"), "", "").unwrap().uid, 0);
        assert_eq!(resolve(Some("0"), "", "").unwrap().name, "root");
    }

    #[test]
    fn an_empty_shell_field_is_the_fallback_shell() {
        assert_eq!(lookup("svc", PASSWD, GROUP).unwrap().shell, FALLBACK_SHELL);
        assert_eq!(
            resolve(Some("31337"), PASSWD, GROUP).unwrap().shell,
            FALLBACK_SHELL
        );
    }

    #[test]
    fn unknown_names_are_named() {
        let e = resolve(Some("mallory"), PASSWD, GROUP).unwrap_err();
        assert_eq!(e, UserError::UnknownUser("mallory".into()));
        assert!(e.to_string().contains("\"mallory\""), "{e}");
        assert_eq!(
            resolve(Some("user:nogroup"), PASSWD, GROUP).unwrap_err(),
            UserError::UnknownGroup("nogroup".into())
        );
        // lookup takes names only: a uid is not a login name.
        assert!(lookup("1000", PASSWD, GROUP).is_err());
    }

    #[test]
    fn odd_lines_are_skipped_and_the_rest_still_counts() {
        let passwd = "garbage\n\
            \n\
            # a comment:x:0:0::/:/bin/sh\n\
            #root:x:0:0::/:/bin/sh\n\
            short:x:5:5:/home/short\n\
            :x:6:6::/nowhere:/bin/sh\n\
            baduid:x:zz:1::/:/bin/sh\n\
            badgid:x:7:-1::/:/bin/sh\n\
            crlf:x:8:8::/home/crlf:/bin/sh\r\n\
            extra:x:9:9::/home/extra:/bin/sh:more:fields\n\
            dup:x:10:10::/first:/bin/sh\n\
            dup:x:11:11::/second:/bin/sh\n";
        let names: Vec<&str> = passwd_entries(passwd).map(|e| e.name).collect();
        assert_eq!(names, ["crlf", "extra", "dup", "dup"]);
        assert_eq!(lookup("crlf", passwd, "").unwrap().shell, "/bin/sh");
        assert_eq!(
            lookup("dup", passwd, "").unwrap().uid,
            10,
            "first entry wins"
        );
        for refused in ["garbage", "short", "baduid", "badgid", "#root", ""] {
            assert!(
                lookup(refused, passwd, "").is_err(),
                "{refused:?} was accepted"
            );
        }
        // A skipped line is not reachable by uid either.
        assert_eq!(resolve(Some("7"), passwd, "").unwrap().name, "7");
    }

    #[test]
    fn odd_group_lines_are_skipped() {
        let group = "# staff:x:50:user\n\
            nomembers:x:51\n\
            bad:x:zz:user\n\
            :x:52:user\n\
            empty:x:53:\n\
            sparse:x:54:,,user,\n\
            again:x:54:user\n\
            crlf:x:55:user\r\n";
        let names: Vec<&str> = group_entries(group).map(|e| e.name).collect();
        assert_eq!(names, ["empty", "sparse", "again", "crlf"]);
        let u = lookup("user", "user:x:1000:1000::/home/user:/bin/sh\n", group).unwrap();
        assert_eq!(u.groups, vec![1000, 54, 55], "deduplicated, in file order");
        assert_eq!(
            resolve(Some("0:nomembers"), "", group).unwrap_err(),
            UserError::UnknownGroup("nomembers".into())
        );
    }
}
