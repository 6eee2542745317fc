//! What to launch: the sandbox description the host hands to the launcher, and the process
//! description it hands to the sandbox init.

use std::path::PathBuf;

use bulkhead_spawn::WinSize;
use serde::{Deserialize, Serialize};

use crate::limits::Limits;

/// One sandbox to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Sandbox id: `[a-z0-9]{1,32}`; also the hostname inside.
    pub id: String,
    /// Read-only layer directories, bottom (base image) first. Stacked as overlay lowerdirs,
    /// never modified, shared by every sandbox that uses them.
    pub layers: Vec<PathBuf>,
    /// Resource limits.
    pub limits: Limits,
    /// Host paths bind-mounted into the sandbox before any user code runs.
    pub binds: Vec<BindMount>,
    /// The writable layer on this host directory (its `upper/` and `work/` are created,
    /// owned by sandbox root) instead of a private tmpfs, so that the host can read what the
    /// sandbox changed after it is gone: what a template build captures as a layer. It must
    /// be on a filesystem overlayfs takes as an upper layer (ext4, xfs), is not limited by
    /// `limits.disk_bytes`, and is left in place when the sandbox is destroyed.
    #[serde(default)]
    pub writable_dir: Option<PathBuf>,
}

/// A host path made visible inside a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    /// Absolute host path (file or directory).
    pub source: PathBuf,
    /// Absolute path inside the sandbox; created if missing.
    pub target: PathBuf,
    /// Mount read-only.
    pub read_only: bool,
    /// Show the tree with the sandbox's own ids (an idmapped mount through the sandbox's user
    /// namespace): a host file of uid N appears owned by N inside, and what the sandbox's uid
    /// N creates is owned by N on the host. Every sandbox's `user` is then one owner on a
    /// shared tree, whichever host uid range the sandbox has, so a range that passes from a
    /// dead sandbox to a new one carries no files with it. Where the filesystem cannot be
    /// idmapped (FUSE), a plain bind. For trees made for sandboxes (storage); a host tree
    /// with files of host root's would give sandbox root its rights there.
    #[serde(default)]
    pub idmap: bool,
}

/// How a process's standard streams are connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stdio {
    /// Separate pipes for stdout and stderr; stdin is a pipe when `stdin` is true, else /dev/null.
    Pipes {
        /// Give the caller a writable stdin pipe.
        stdin: bool,
    },
    /// One pseudo-terminal for all three streams, as the process's controlling terminal.
    Pty {
        /// Terminal size.
        size: WinSize,
    },
}

/// One process to start inside a sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecSpec {
    /// Program and arguments; `argv[0]` is looked up in `PATH` when it has no `/`.
    pub argv: Vec<String>,
    /// Environment, laid over the baseline of `bulkhead_spawn::env` (`PATH`, `HOME`, `USER`,
    /// `LOGNAME`, `SHELL`, `LANG`, and `TERM` on a PTY); nothing is inherited from the host.
    pub env: Vec<(String, String)>,
    /// Working directory; defaults to the user's home, or `/`.
    pub cwd: Option<String>,
    /// User name or numeric uid (`"user"`, `"1000"`, `"1000:1000"`); defaults to root.
    pub user: Option<String>,
    /// Standard streams.
    pub stdio: Stdio,
    /// Keep the process running when the host closes its connection. By default, closing
    /// the connection kills the process's group.
    pub detach: bool,
}

impl ExecSpec {
    /// A root process with piped output, no stdin and the default environment.
    pub fn command<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: None,
            user: None,
            stdio: Stdio::Pipes { stdin: false },
            detach: false,
        }
    }
}

/// Checks that an id is safe as a hostname, a directory name and a cgroup name.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A fresh random sandbox id: 20 characters of `[a-z0-9]`.
pub fn new_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
