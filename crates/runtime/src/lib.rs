//! The Bulkhead sandbox runtime: Linux-namespace sandboxes started in milliseconds.
//!
//! A sandbox is a stack of read-only layer directories (shared, idmapped so that image root
//! is sandbox root) under a private writable layer, in its own user, mount, pid, network,
//! uts, ipc and cgroup namespaces, with cgroup limits, a seccomp filter, no_new_privs and a
//! Docker-like capability set. PID 1 is the `bulkhead` binary itself (see [`launch`]); the
//! host talks to it over a Unix socket to start processes ([`Sandbox::exec`]).
//!
//! Threading: [`Runtime::create`], [`Sandbox::exec`] and [`Sandbox::destroy`] block for
//! milliseconds; async callers run them on a blocking thread. They never fork the calling
//! process: each sandbox is started by a freshly exec'd launcher, so callers may be
//! multi-threaded.
//!
//! Not here: buckets (the caller mounts them and passes host paths as [`BindMount`]s),
//! images (the caller passes unpacked layer directories), the E2B protocol.

#![warn(missing_docs)]
// Raw syscalls and `unsafe` live in `sys` only (the one module allowed below).
#![deny(unsafe_code)]

pub mod cgroup;
mod error;
pub mod init;
pub mod launch;
pub mod limits;
mod pool;
mod process;
pub mod protocol;
mod runtime;
mod sandbox;
pub mod seccomp;
pub mod spec;
#[allow(unsafe_code)]
mod sys;
mod uids;
mod undo;

pub use bulkhead_spawn::WinSize;
pub use error::{ExecError, RuntimeError};
pub use launch::{FailureKind, LaunchFailure, LaunchStep, run_launcher};
pub use limits::Limits;
pub use pool::{Pool, PoolKey, Prepare};
pub use process::{ExitStatus, Process};
pub use protocol::ExecFailure;
pub use runtime::{Runtime, RuntimeConfig};
pub use sandbox::{Sandbox, SandboxState};
pub use spec::{BindMount, ExecSpec, SandboxSpec, Stdio};
/// How many uids (and gids) each sandbox maps, from its root's host id up.
pub use uids::RANGE as IDS_PER_SANDBOX;
