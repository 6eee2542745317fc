//! Users and groups as the sandbox's own `/etc/passwd` and `/etc/group` define them.

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Name (or the number, when the image does not know the uid).
    pub name: String,
    /// Uid inside the sandbox.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Supplementary groups, primary included.
    pub groups: Vec<u32>,
    /// Home directory.
    pub home: String,
}

/// Resolves `spec` (`None` = root, a name, `"uid"` or `"uid:gid"`) against passwd/group text.
pub fn resolve(spec: Option<&str>, passwd: &str, group: &str) -> Result<User, String> {
    let spec = spec.unwrap_or("root");
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 7)
        .collect();
    let (uid_part, gid_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let by_name = entries.iter().find(|f| f[0] == uid_part);
    let numeric: Option<u32> = uid_part.parse().ok();
    let entry =
        by_name.or_else(|| numeric.and_then(|n| entries.iter().find(|f| f[2].parse() == Ok(n))));
    let mut user = match (entry, numeric) {
        (Some(f), _) => User {
            name: f[0].to_string(),
            uid: f[2]
                .parse()
                .map_err(|_| format!("bad uid for {:?} in /etc/passwd", f[0]))?,
            gid: f[3]
                .parse()
                .map_err(|_| format!("bad gid for {:?} in /etc/passwd", f[0]))?,
            groups: Vec::new(),
            home: f[5].to_string(),
        },
        (None, Some(n)) if uid_part == "0" || spec == "root" => User {
            name: "root".into(),
            uid: n,
            gid: 0,
            groups: Vec::new(),
            home: "/root".into(),
        },
        (None, Some(n)) => User {
            name: n.to_string(),
            uid: n,
            gid: n,
            groups: Vec::new(),
            home: "/".into(),
        },
        (None, None) if spec == "root" => User {
            name: "root".into(),
            uid: 0,
            gid: 0,
            groups: Vec::new(),
            home: "/root".into(),
        },
        (None, None) => {
            return Err(format!(
                "unknown user {uid_part:?}: not in the sandbox's /etc/passwd"
            ));
        }
    };
    if let Some(g) = gid_part {
        user.gid = match g.parse() {
            Ok(n) => n,
            Err(_) => group_id(group, g)
                .ok_or_else(|| format!("unknown group {g:?}: not in the sandbox's /etc/group"))?,
        };
    }
    user.groups.push(user.gid);
    for line in group.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 4
            && f[3].split(',').any(|m| m == user.name)
            && let Ok(gid) = f[2].parse()
            && !user.groups.contains(&gid)
        {
            user.groups.push(gid);
        }
    }
    Ok(user)
}

fn group_id(group: &str, name: &str) -> Option<u32> {
    group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[0] == name)
        .and_then(|f| f[2].parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nuser:x:1000:\naudio:x:29:user\n";

    #[test]
    fn names_and_numbers() {
        let u = resolve(Some("user"), PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1000, "/home/user"));
        assert_eq!(u.groups, vec![1000, 29]);
        assert_eq!(resolve(None, PASSWD, GROUP).unwrap().uid, 0);
        assert_eq!(resolve(Some("1000"), PASSWD, GROUP).unwrap().name, "user");
        let anon = resolve(Some("4242:7"), PASSWD, GROUP).unwrap();
        assert_eq!((anon.uid, anon.gid), (4242, 7));
        assert_eq!(resolve(Some("root"), "", "").unwrap().uid, 0);
    }

    #[test]
    fn unknown_user_is_named() {
        let e = resolve(Some("mallory"), PASSWD, GROUP).unwrap_err();
        assert!(e.contains("\"mallory\""), "{e}");
        assert!(resolve(Some("user:nogroup"), PASSWD, GROUP).is_err());
    }
}
