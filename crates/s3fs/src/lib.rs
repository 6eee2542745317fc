//! `bulkhead-s3fs`: a FUSE filesystem over an S3 bucket (or a prefix of one).
//!
//! What it owns: the S3 client it needs ([`client`]), the filesystem semantics (see
//! `docs/SEMANTICS.md` in this crate), the FUSE adapter, and mounting/unmounting
//! ([`S3Mount`], [`MountHandle`]). What it does not: reading the environment, argv or
//! config files (callers build a [`MountConfig`]), and bind-mounting into sandboxes.
//!
//! Threads: a mount runs `fuse_threads` FUSE worker threads that block on an async core
//! running on the mount's own two-thread tokio runtime; [`S3Mount::mount`] creates both
//! and [`MountHandle::unmount`] stops them.
//!
//! ```no_run
//! use bulkhead_s3fs::{Credentials, MountConfig, S3Mount};
//! let config = MountConfig {
//!     bucket: "my-bucket".into(),
//!     endpoint: Some("http://127.0.0.1:9000".into()),
//!     credentials: Some(Credentials::new("AKID", "SECRET", None)),
//!     ..MountConfig::default()
//! };
//! let mount = S3Mount::mount(config, std::path::Path::new("/mnt/bucket"))?;
//! // ... use /mnt/bucket ...
//! mount.unmount()?;
//! # Ok::<(), bulkhead_s3fs::MountError>(())
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod client;
mod config;
mod credentials;
mod error;
mod fs;
mod fuse;
mod journal;
mod mount;
pub mod stats;

pub use config::{Attributes, MIN_PART_SIZE, MountConfig, ReadStrategy};
pub use credentials::Credentials;
pub use error::{ConfigError, CredentialsError, FsError, MountError, S3Error};
pub use mount::{MountHandle, S3Mount};
