//! Every raw syscall and every `unsafe` block of the runtime lives under this module, each with
//! a `SAFETY:` comment. The rest of the crate calls these typed wrappers.

pub mod caps;
pub mod fdpass;
pub mod idmap;
pub mod net;
pub mod netns;
pub mod proc;
