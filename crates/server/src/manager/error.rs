//! What the manager's operations fail with. The manager speaks no HTTP: `api/` maps these
//! to statuses and E2B error bodies, in one place.

use std::path::PathBuf;

use bulkhead_runtime::RuntimeError;
use bulkhead_runtime::cgroup::CgroupError;
use bulkhead_store::StoreError;

use super::envd::EnvdError;

/// A failed manager operation.
///
/// Callers act on the class of the variant: [`SandboxNotFound`](Self::SandboxNotFound) and
/// [`TemplateNotFound`](Self::TemplateNotFound) (the name does not exist for this team),
/// [`AlreadyPaused`](Self::AlreadyPaused), [`AlreadyRunning`](Self::AlreadyRunning) and
/// [`IdempotencyKeyFailed`](Self::IdempotencyKeyFailed) (the request conflicts with the
/// sandbox's state), [`Invalid`](Self::Invalid) (a value the caller can correct),
/// [`NoCapacity`](Self::NoCapacity) (retry later); every other variant is an internal failure
/// whose details are for the log, not the client. Add a variant only for a failure a caller
/// handles differently from these.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// No such sandbox, or it belongs to another team (the two are not told apart).
    #[error("sandbox {id} not found")]
    SandboxNotFound {
        /// The id asked for.
        id: String,
    },
    /// No template answers to this id or alias.
    #[error("template '{template}' not found")]
    TemplateNotFound {
        /// The name asked for.
        template: String,
    },
    /// Pausing a sandbox that is paused.
    #[error("sandbox {id} is already paused")]
    AlreadyPaused {
        /// The sandbox.
        id: String,
    },
    /// Resuming (the legacy endpoint) a sandbox that runs.
    #[error("sandbox {id} is already running")]
    AlreadyRunning {
        /// The sandbox.
        id: String,
    },
    /// Another create with the same idempotency key won the race and then failed, so there
    /// is no sandbox to return.
    #[error("a create with this Idempotency-Key failed")]
    IdempotencyKeyFailed,
    /// A request value this server refuses.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The cursor of a list request was not produced by this server.
    #[error("invalid nextToken")]
    InvalidCursor,
    /// Admission control refused the create (429: retry later).
    #[error(transparent)]
    Refused(#[from] super::Refusal),
    /// No sandbox could be started right now (retryable).
    #[error("could not start a sandbox")]
    NoCapacity(#[source] RuntimeError),
    /// The sandbox's own part of the storage could not be attached.
    #[error("attaching storage {path}")]
    AttachStorage {
        /// The host directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// envd in the new sandbox did not accept its settings.
    #[error("envd setup failed")]
    EnvdSetup(#[source] EnvdError),
    /// A sandbox paused with its filesystem only could not start its daemons again.
    #[error("resuming sandbox {id} after a filesystem pause: {message}")]
    Restart {
        /// Sandbox id.
        id: String,
        /// What failed.
        message: String,
    },
    /// Freezing or thawing the sandbox's cgroup failed.
    #[error("{action} sandbox {id}")]
    Freeze {
        /// "pausing" or "resuming".
        action: &'static str,
        /// The sandbox.
        id: String,
        /// The cause.
        #[source]
        source: CgroupError,
    },
    /// The metadata store failed.
    #[error("metadata store: {op}")]
    Store {
        /// What the manager was doing, e.g. "recording the sandbox".
        op: &'static str,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// A network rule this server refuses (the message names the entry).
    #[error(transparent)]
    Policy(#[from] bulkhead_net::PolicyError),
    /// Every sandbox address is in use (retryable).
    #[error("no sandbox network address is free")]
    NetworkFull(#[source] bulkhead_net::NetError),
    /// Setting up or changing a sandbox's network failed.
    #[error("sandbox network")]
    Network(#[source] bulkhead_net::NetError),
    /// A blocking task panicked or was cancelled.
    #[error("blocking task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// Request values the manager refuses (the client can correct them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// A create's timeout is zero or negative.
    #[error("Timeout must be greater than 0")]
    CreateTimeout,
    /// A new timeout is negative.
    #[error("timeout must not be negative")]
    NegativeTimeout,
    /// Outbound networking was asked for on a server without a sandbox network.
    #[error(
        "internet access is not available on this server: sandboxes have loopback networking only"
    )]
    InternetAccess,
    /// A metrics window that ends before it starts.
    #[error("start ({start}) must not be after end ({end})")]
    MetricsWindow {
        /// The window's first second.
        start: i64,
        /// Its last second.
        end: i64,
    },
    /// `GET /sandboxes/metrics` naming no sandbox or too many.
    #[error("sandbox_ids must name 1 to {max} sandboxes, not {given}")]
    SandboxIdCount {
        /// How many ids the request named.
        given: usize,
        /// How many one request may name.
        max: usize,
    },
}

impl ManagerError {
    pub(crate) fn not_found(id: &str) -> Self {
        ManagerError::SandboxNotFound { id: id.to_string() }
    }
}

/// `.store("what")` on a store result.
pub(crate) trait StoreOp<T> {
    fn store(self, op: &'static str) -> Result<T, ManagerError>;
}

impl<T> StoreOp<T> for Result<T, StoreError> {
    fn store(self, op: &'static str) -> Result<T, ManagerError> {
        self.map_err(|source| ManagerError::Store { op, source })
    }
}
