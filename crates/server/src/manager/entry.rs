//! One registered sandbox: the store's record of it and the runtime's handle on it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bulkhead_runtime::Sandbox;
use bulkhead_store::{SandboxRecord, SandboxStatus, TeamId, Timestamp};

/// A sandbox the server manages. Its row is the store's [`SandboxRecord`], the one shape a
/// sandbox has in the registry, in SQLite and (as a copy) in what the API renders; changes
/// to it are written through to the store by the manager.
#[derive(Debug)]
pub struct Entry {
    sandbox: Arc<Sandbox>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    record: SandboxRecord,
    /// The previous CPU sample (for the metrics' percentage); not persisted, a restart
    /// only costs one sample.
    last_cpu: Option<(Instant, u64)>,
}

impl Entry {
    /// Registers `sandbox` under `record` (whose `sandbox_id` is the sandbox's id).
    pub(crate) fn new(record: SandboxRecord, sandbox: Sandbox) -> Self {
        debug_assert_eq!(record.sandbox_id, sandbox.id());
        Self {
            sandbox: Arc::new(sandbox),
            state: Mutex::new(State {
                record,
                last_cpu: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sandbox id.
    pub fn id(&self) -> &str {
        self.sandbox.id()
    }

    /// The runtime handle.
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// A copy of the row as it is now.
    pub fn record(&self) -> SandboxRecord {
        self.lock().record.clone()
    }

    /// Reads or changes the row under its lock (never across an await).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut SandboxRecord) -> R) -> R {
        f(&mut self.lock().record)
    }

    /// Whether `team` owns it.
    pub fn belongs_to(&self, team: &TeamId) -> bool {
        self.with(|r| r.team_id == *team)
    }

    /// When the sandbox will be killed (or paused).
    pub fn end_at(&self) -> Timestamp {
        self.with(|r| r.end_at)
    }

    /// Current status.
    pub fn status(&self) -> SandboxStatus {
        self.with(|r| r.status)
    }

    /// Swaps the previous CPU sample for `(at, cpu_ns)` and returns the previous one.
    pub(crate) fn swap_cpu_sample(&self, at: Instant, cpu_ns: u64) -> Option<(Instant, u64)> {
        self.lock().last_cpu.replace((at, cpu_ns))
    }
}
