//! Cgroups for sandboxes: v1 controllers on hybrid hosts (like the machines Bulkhead is
//! developed on), v2 on pure-v2 hosts. The layout is detected from `/proc/self/mountinfo`,
//! never assumed.
//!
//! Every sandbox gets one cgroup per hierarchy, named `<parent>/<sandbox id>`; the parent
//! (`bulkhead` by default) is created beside the hierarchy root's other children, never inside
//! the server's own cgroup, so a server restart does not touch running sandboxes.

mod layout;
mod sandbox_cgroup;

pub use layout::{CgroupLayout, detect_layout};
pub use sandbox_cgroup::{CgroupStats, SandboxCgroup};

use std::path::PathBuf;

/// Failures creating, limiting or removing a sandbox cgroup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// `/proc/self/mountinfo` could not be read.
    #[error("cannot read the cgroup mounts")]
    Mountinfo(#[source] std::io::Error),
    /// A controller Bulkhead needs is not mounted.
    #[error("no {0} cgroup controller is available (neither v1 nor v2)")]
    MissingController(&'static str),
    /// A cgroup file or directory operation failed.
    #[error("cgroup operation on {path} failed")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Processes were still in the cgroup after it was killed.
    #[error("cgroup {0} still has processes after kill")]
    Busy(PathBuf),
}
