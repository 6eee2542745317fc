//! Starting a sandbox: the host side ([`crate::Runtime::create`]) and the launcher process.
//!
//! Process model (ordering matters; each step is commented where it is enforced):
//!
//! ```text
//! host (any process, may be multi-threaded; a child subreaper)
//!  └─ exec `bulkhead __launch` = L   fresh, single-threaded, host root
//!      │  joins the sandbox cgroup, unshares a private mount namespace
//!      └─ fork = C                    unshare(user ns); waits for L
//!          │  L: writes uid/gid maps, idmaps the layers, mounts overlay + /dev into L's mount ns
//!          │  C: unshare(mount, pid, net, uts, ipc, cgroup ns) — copies L's mounts
//!          └─ fork = I (PID 1)        proc/sys/devpts, pivot_root, hostname, lo up
//!                                     → init loop on the control socket
//! ```
//!
//! C exits as soon as I exists, and L once I reports ready, so I is re-parented to the host
//! (a child subreaper) and nothing but I stays alive per sandbox. L's mount namespace dies
//! with L; the mounts live on only in I's namespace, so destroying the sandbox (killing I)
//! releases every mount without an unmount call and leaves nothing in the host's mount table.
//!
//! A failure at any point is a [`LaunchFailure`] (the [`LaunchStep`], the errno, a detail):
//! C and I write it to L over the status pipe, L writes it to the host on stdout, and the host
//! turns it into [`crate::RuntimeError::Launch`], whose [`crate::RuntimeError::kind`] tells a
//! broken image from a misconfigured host.

pub(crate) mod child;
mod failure;
pub(crate) mod launcher;
pub(crate) mod plan;
pub(crate) mod rootfs;

pub(crate) use failure::kind_of;
pub use failure::{FailureKind, LaunchFailure, LaunchStep};
pub use launcher::run_launcher;
