//! `bulkhead-store`: Bulkhead's metadata database (SQLite) and the data-dir path layout.
//!
//! It owns: the schema and its migrations (`PRAGMA user_version`), teams, API keys (only
//! SHA-256 hashes of secrets are stored), and the sandbox registry: one [`SandboxRecord`] per
//! sandbox the server runs or keeps paused, every field of it persisted, so that a restarted
//! server takes its sandboxes back unchanged. Every SQL statement of Bulkhead lives in this
//! crate, so that another database (PostgreSQL) can stand beside SQLite behind the same API.
//!
//! It does not list or page sandboxes for the API: the server filters its own registry.
//!
//! It does not own policy: who may see which sandbox, timeouts, defaults and limits are the
//! server's. Nothing here reads the environment or spawns threads.
//!
//! Threads: [`Store`] is `Send + Sync` and every call blocks on SQLite; from async code call
//! it through `spawn_blocking`.
//!
//! ```no_run
//! # fn demo() -> Result<(), bulkhead_store::StoreError> {
//! use bulkhead_store::{DataDir, Store};
//! let store = Store::open(&DataDir::new("/var/lib/bulkhead").db())?;
//! let team = store.ensure_team("default")?;
//! let key = store.create_api_key(&team, "first key")?;
//! assert!(store.authenticate(key.secret.expose())?.is_some());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod keys;
mod layout;
mod sandbox;
mod schema;
mod secret;
mod store;
mod timestamp;

pub use chrono;
pub use error::{ConflictKind, StoreError};
pub use keys::{ApiKeyInfo, NewApiKey, SECRET_PREFIX, TeamId};
pub use layout::DataDir;
pub use sandbox::{SandboxRecord, SandboxStatus};
pub use secret::Secret;
pub use store::Store;
pub use timestamp::{Timestamp, format_rfc3339, now, parse_rfc3339};
