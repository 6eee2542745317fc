//! The store's error type: one enum for every caller of [`crate::Store`].

use std::path::PathBuf;

use crate::TeamId;

/// What a [`StoreError::Conflict`] collided with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// A sandbox with the same `sandbox_id` is already registered.
    SandboxId,
    /// The team already has a sandbox created with the same idempotency key; fetch it with
    /// [`crate::Store::find_by_idempotency_key`].
    IdempotencyKey,
}

impl std::fmt::Display for ConflictKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConflictKind::SandboxId => "sandbox id",
            ConflictKind::IdempotencyKey => "idempotency key",
        })
    }
}

/// Everything a store operation can fail with.
///
/// Callers act differently on: [`Conflict`](Self::Conflict) (409 or an idempotent replay),
/// [`UnknownTeam`](Self::UnknownTeam), [`Ambiguous`](Self::Ambiguous); everything else is an
/// internal error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file (or its directory) could not be created or opened.
    #[error("cannot open the database file {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite refused an operation.
    #[error("sqlite failed to {op}")]
    Sqlite {
        /// What the store was doing, e.g. "insert a sandbox".
        op: &'static str,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// A uniqueness rule was violated; nothing was written.
    #[error("a sandbox with this {what} already exists")]
    Conflict {
        /// Which rule.
        what: ConflictKind,
    },
    /// A sandbox names a team that does not exist; nothing was written.
    #[error("unknown team {team}")]
    UnknownTeam {
        /// The team id given.
        team: TeamId,
    },
    /// An id prefix matched more than one API key; nothing was revoked.
    #[error("{prefix:?} matches {matches} API keys; give more of the id")]
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// How many keys it matched.
        matches: usize,
    },
    /// A stored row holds a value this version cannot read.
    #[error("corrupt row in {table} ({key}): {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database was written by a newer Bulkhead (schema version above what this build knows).
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// The latest version this build migrates to.
        supported: i64,
    },
}

/// Attaches the failed operation to a rusqlite error.
pub(crate) trait SqliteOp<T> {
    /// Wraps the error as [`StoreError::Sqlite`] with `op`.
    fn op(self, op: &'static str) -> Result<T, StoreError>;
}

impl<T> SqliteOp<T> for Result<T, rusqlite::Error> {
    fn op(self, op: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sqlite { op, source })
    }
}

/// The kind of constraint a failed statement violated, if any.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Violation {
    PrimaryKey,
    Unique,
    ForeignKey,
}

/// Classifies a constraint violation by SQLite's extended result code.
pub(crate) fn violation(err: &rusqlite::Error) -> Option<Violation> {
    match err {
        rusqlite::Error::SqliteFailure(e, _) => match e.extended_code {
            rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => Some(Violation::PrimaryKey),
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE => Some(Violation::Unique),
            rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Some(Violation::ForeignKey),
            _ => None,
        },
        _ => None,
    }
}
