//! One registered sandbox: the store's record of it and the runtime's handle on it.

use std::sync::{Arc, Mutex, MutexGuard};

use bulkhead_runtime::Sandbox;
use bulkhead_store::{SandboxRecord, SandboxStatus, TeamId, Timestamp};

use super::metrics::MetricsHistory;

/// A sandbox the server manages. Its row is the store's [`SandboxRecord`], the one shape a
/// sandbox has in the registry, in SQLite and (as a copy) in what the API renders; changes
/// to it are written through to the store by the manager.
#[derive(Debug)]
pub struct Entry {
    sandbox: Arc<Sandbox>,
    state: Mutex<State>,
    /// The sandbox network it is attached to (left at destroy).
    network: Option<Arc<bulkhead_net::Network>>,
}

#[derive(Debug)]
struct State {
    record: SandboxRecord,
    /// Samples over time; not persisted (a restarted server starts a new history).
    metrics: MetricsHistory,
    /// The environment envd was given at hand-over, given again when a filesystem-only
    /// pause ends (envd starts anew then). Not persisted, like the metrics.
    env_vars: std::collections::BTreeMap<String, String>,
    /// Paused with the filesystem only: its processes ended, envd must be started again.
    filesystem_paused: bool,
    /// How often envd died and was started again (reported in the sandbox's logs and in
    /// `/metrics`), and when last.
    envd_restarts: u32,
    envd_restarted_at: Option<std::time::Instant>,
    /// A restart of envd is running (on a task of its own).
    envd_restarting: bool,
}

impl Entry {
    /// Registers `sandbox` under `record` (whose `sandbox_id` is the sandbox's id).
    pub(crate) fn new(record: SandboxRecord, sandbox: Sandbox) -> Self {
        debug_assert_eq!(record.sandbox_id, sandbox.id());
        Self {
            sandbox: Arc::new(sandbox),
            state: Mutex::new(State {
                record,
                metrics: MetricsHistory::default(),
                env_vars: Default::default(),
                filesystem_paused: false,
                envd_restarts: 0,
                envd_restarted_at: None,
                envd_restarting: false,
            }),
            network: None,
        }
    }

    /// Keeps the environment envd was given (for a resume after a filesystem-only pause).
    pub(crate) fn with_env_vars(self, env: std::collections::BTreeMap<String, String>) -> Self {
        self.lock().env_vars = env;
        self
    }

    /// The environment envd was given at hand-over.
    pub(crate) fn env_vars(&self) -> std::collections::BTreeMap<String, String> {
        self.lock().env_vars.clone()
    }

    /// Whether the current pause kept only the filesystem; sets it to `value`.
    pub(crate) fn swap_filesystem_paused(&self, value: bool) -> bool {
        std::mem::replace(&mut self.lock().filesystem_paused, value)
    }

    /// Whether the sandbox is paused (or being paused) with its filesystem only.
    pub(crate) fn is_filesystem_paused(&self) -> bool {
        self.lock().filesystem_paused
    }

    /// Takes the turn to restart envd: `None` while a restart runs or the last one began
    /// less than `gap` ago; else the number of this restart (the turn is held until
    /// [`Entry::end_envd_restart`]).
    pub(crate) fn begin_envd_restart(&self, gap: std::time::Duration) -> Option<u32> {
        let mut st = self.lock();
        if st.envd_restarting || st.envd_restarted_at.is_some_and(|t| t.elapsed() < gap) {
            return None;
        }
        st.envd_restarting = true;
        st.envd_restarts += 1;
        st.envd_restarted_at = Some(std::time::Instant::now());
        Some(st.envd_restarts)
    }

    /// Ends the turn [`Entry::begin_envd_restart`] gave.
    pub(crate) fn end_envd_restart(&self) {
        self.lock().envd_restarting = false;
    }

    /// Notes that the sandbox is attached to `network`, so that destroy detaches it.
    pub(crate) fn with_network(mut self, network: Option<Arc<bulkhead_net::Network>>) -> Self {
        self.network = network;
        self
    }

    /// The sandbox network it is attached to.
    pub(crate) fn network(&self) -> Option<&Arc<bulkhead_net::Network>> {
        self.network.as_ref()
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

    /// Reads or changes the metrics history under the entry's lock: `f` must not call back
    /// into the entry (the lock is not reentrant).
    pub(crate) fn with_metrics<R>(&self, f: impl FnOnce(&mut MetricsHistory) -> R) -> R {
        f(&mut self.lock().metrics)
    }
}
