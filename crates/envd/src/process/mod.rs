//! The `process.Process` service: start, attach to, feed, signal and list processes.

pub mod error;
pub mod messages;
pub mod rpc;
pub mod spawn;
pub mod table;
