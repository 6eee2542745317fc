//! One registered sandbox.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::clock::Timestamp;
use bulkhead_runtime::Sandbox;

/// Running or paused (frozen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxStatus {
    /// Processes run.
    Running,
    /// Processes are frozen; memory and files are kept.
    Paused,
}

impl SandboxStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxStatus::Running => "running",
            SandboxStatus::Paused => "paused",
        }
    }
}

/// A sandbox the server manages.
#[derive(Debug)]
pub struct Entry {
    /// Sandbox id.
    pub id: String,
    /// Owning team.
    pub team: String,
    /// Template id it was created from.
    pub template_id: String,
    /// Template alias used at creation, if any.
    pub alias: Option<String>,
    /// Creation time.
    pub started_at: Timestamp,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
    /// Token envd requires (`X-Access-Token`).
    pub envd_token: String,
    /// Limits as reported to clients.
    pub cpu_count: u32,
    /// Memory limit in MiB.
    pub memory_mb: u64,
    /// Disk size in MiB.
    pub disk_mb: u64,
    /// Pause instead of kill when the timeout expires.
    pub auto_pause: bool,
    /// The runtime handle.
    pub sandbox: Arc<Sandbox>,
    /// The sandbox network it is attached to (removed from it at destroy).
    pub(crate) network: Option<Arc<bulkhead_net::Network>>,
    pub(crate) mutable: Mutex<Mutable>,
}

#[derive(Debug)]
pub(crate) struct Mutable {
    pub end_at: Timestamp,
    pub status: SandboxStatus,
    pub last_cpu: Option<(std::time::Instant, u64)>,
}

impl Entry {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Mutable> {
        self.mutable.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the sandbox will be killed (or paused).
    pub fn end_at(&self) -> Timestamp {
        self.lock().end_at
    }

    /// Current status.
    pub fn status(&self) -> SandboxStatus {
        self.lock().status
    }
}
