//! The `filesystem.Filesystem` service: stat, list, create, move, remove and watch paths.

pub mod entry;
pub mod error;
pub mod ops;
pub mod rpc;
pub mod watch;
