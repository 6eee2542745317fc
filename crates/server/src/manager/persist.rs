//! The registry on disk: every handed-out sandbox has a row in the store, so a restarted
//! server finds it again. Store calls block on SQLite and run on the blocking pool.

use std::sync::Arc;

use bulkhead_store::{SandboxRecord, Secret, Store, StoreError, TeamId};

use super::{Entry, SandboxStatus};
use crate::error::ApiError;

/// Runs `f` against the store on the blocking pool.
pub(crate) async fn db<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(format!("metadata store: {e}")))
}

pub(crate) fn status_to_store(s: SandboxStatus) -> bulkhead_store::SandboxStatus {
    match s {
        SandboxStatus::Running => bulkhead_store::SandboxStatus::Running,
        SandboxStatus::Paused => bulkhead_store::SandboxStatus::Paused,
    }
}

pub(crate) fn status_from_store(s: bulkhead_store::SandboxStatus) -> SandboxStatus {
    match s {
        bulkhead_store::SandboxStatus::Running => SandboxStatus::Running,
        bulkhead_store::SandboxStatus::Paused => SandboxStatus::Paused,
    }
}

/// The row of an entry.
pub(crate) fn record(e: &Arc<Entry>, idempotency_key: Option<String>) -> SandboxRecord {
    SandboxRecord {
        sandbox_id: e.id.clone(),
        team_id: TeamId::new(e.team.clone()),
        template_id: e.template_id.clone(),
        alias: e.alias.clone(),
        started_at: e.started_at,
        end_at: e.end_at(),
        status: status_to_store(e.status()),
        metadata: e.metadata.clone(),
        envd_access_token: Secret::new(e.envd_token.clone()),
        cpu_count: e.cpu_count,
        memory_mb: u32::try_from(e.memory_mb).unwrap_or(u32::MAX),
        disk_mb: u32::try_from(e.disk_mb).unwrap_or(u32::MAX),
        idempotency_key,
    }
}
