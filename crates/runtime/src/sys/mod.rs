//! Every raw syscall and every `unsafe` block of the runtime lives under this module, each with
//! a `SAFETY:` comment; the crate root denies `unsafe_code` everywhere else, so the compiler
//! keeps it that way. The rest of the crate calls these typed wrappers.

pub mod caps;
pub mod fdpass;
pub mod fork;
pub mod idmap;
pub mod net;
pub mod netns;
pub mod path;
pub mod proc;
