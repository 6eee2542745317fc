//! Path resolution as envd does it: empty → default workdir or home, `~` → home, relative →
//! joined to the user's home, then cleaned lexically (`.`/`..` resolved, never above `/`).

use std::path::{Component, Path, PathBuf};

use crate::users::User;

/// Resolves a request path for `user`. Never fails: every string names some absolute path.
pub fn resolve(path: &str, user: &User, default_workdir: Option<&Path>) -> PathBuf {
    if path.is_empty() {
        return clean(default_workdir.unwrap_or(&user.home));
    }
    if path == "~" {
        return clean(&user.home);
    }
    if let Some(rest) = path.strip_prefix("~/") {
        return clean(&user.home.join(rest));
    }
    let p = Path::new(path);
    if p.is_absolute() {
        clean(p)
    } else {
        clean(&user.home.join(p))
    }
}

/// Lexical cleaning of an absolute path (relative input is made absolute from `/`).
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            name: "user".into(),
            uid: 1000,
            gid: 1000,
            home: "/home/user".into(),
            groups: vec![],
            shell: "/bin/bash".into(),
        }
    }

    #[test]
    fn resolution_rules() {
        let u = user();
        assert_eq!(resolve("", &u, None), PathBuf::from("/home/user"));
        assert_eq!(
            resolve("", &u, Some(Path::new("/work"))),
            PathBuf::from("/work")
        );
        assert_eq!(resolve("~", &u, None), PathBuf::from("/home/user"));
        assert_eq!(resolve("~/a/../b", &u, None), PathBuf::from("/home/user/b"));
        assert_eq!(
            resolve("rel/x", &u, Some(Path::new("/work"))),
            PathBuf::from("/home/user/rel/x")
        );
        assert_eq!(resolve("/a/./b/../../../c", &u, None), PathBuf::from("/c"));
    }
}
