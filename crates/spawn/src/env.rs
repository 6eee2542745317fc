//! The environment every process starts from. Nothing is inherited from the starter: the
//! baseline is built from the user and the terminal, and callers lay their own variables over
//! it (later layers win).
//!
//! The baseline, for every process:
//!
//! | variable | value |
//! |---|---|
//! | `PATH` | the starter's configured path, [`DEFAULT_PATH`] unless changed |
//! | `HOME` | the user's home directory |
//! | `USER`, `LOGNAME` | the user's name |
//! | `SHELL` | the user's login shell ([`crate::users::FALLBACK_SHELL`] when none) |
//! | `LANG` | [`DEFAULT_LANG`] |
//! | `TERM` | [`PTY_TERM`], only when the process has a PTY |

use std::collections::BTreeMap;

use crate::users::User;

/// `PATH` inside sandboxes unless the starter is configured otherwise.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `LANG` of every process: UTF-8 without needing any locale installed in the image.
pub const DEFAULT_LANG: &str = "C.UTF-8";

/// `TERM` of a process with a PTY.
pub const PTY_TERM: &str = "xterm-256color";

/// The baseline environment of a process run as `user` with `path` as `PATH`; `pty` says
/// whether it gets a terminal. Callers extend the map with their own layers.
pub fn baseline(user: &User, path: &str, pty: bool) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("PATH".to_owned(), path.to_owned());
    env.insert("HOME".to_owned(), user.home.display().to_string());
    env.insert("USER".to_owned(), user.name.clone());
    env.insert("LOGNAME".to_owned(), user.name.clone());
    env.insert("SHELL".to_owned(), user.shell.clone());
    env.insert("LANG".to_owned(), DEFAULT_LANG.to_owned());
    if pty {
        env.insert("TERM".to_owned(), PTY_TERM.to_owned());
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_names_the_user_and_the_terminal() {
        let user = crate::users::lookup("user", "user:x:1000:1000::/home/user:/bin/bash\n", "")
            .expect("user");
        let env = baseline(&user, DEFAULT_PATH, false);
        let keys: Vec<&str> = env.keys().map(String::as_str).collect();
        assert_eq!(keys, ["HOME", "LANG", "LOGNAME", "PATH", "SHELL", "USER"]);
        assert_eq!(env["HOME"], "/home/user");
        assert_eq!(env["SHELL"], "/bin/bash");
        assert_eq!(baseline(&user, "/bin", true)["TERM"], PTY_TERM);
        assert_eq!(baseline(&user, "/bin", true)["PATH"], "/bin");
    }
}
