//! Starting one process inside a sandbox, the same way for every starter (the sandbox init,
//! envd, and whatever comes next).
//!
//! Owns: the child's setup between fork and exec ([`ChildSetup`]: signal dispositions and
//! mask, session, stdio, controlling terminal, descriptors, identity), forking and exec with
//! a report of the failed step ([`spawn`]), PTYs and their size ([`pty`], [`WinSize`]), the
//! environment baseline ([`env`]), and users and groups from the sandbox's passwd and group
//! text ([`users`]).
//!
//! Does not own: policy (capabilities, no_new_privs, seccomp: the starter adds them through
//! [`Confine`]), reading files (callers pass passwd/group text), waiting for the process, or
//! its output.
//!
//! Threading: no threads of its own. [`spawn`] and [`ChildSetup::install`] may be called from
//! a multi-threaded process: the child only makes async-signal-safe calls on memory prepared
//! before the fork.

#![warn(missing_docs)]
#![deny(unsafe_code)]

mod command;
pub mod env;
pub mod pty;
mod setup;
mod sys;
pub mod users;

pub use command::{Command, CommandError, SpawnError, Stage, spawn};
pub use pty::WinSize;
pub use setup::{ChildSetup, Confine, Identity};
pub use users::User;
