//! Taking sandboxes back after a restart.

use std::sync::{Arc, Mutex};

use bulkhead_runtime::Sandbox;

use super::{Entry, Manager, entry, persist};
use crate::error::ApiError;

impl Manager {
    /// After a restart: takes back every recorded sandbox that still runs (its processes,
    /// files and paused state intact), forgets the records of those that died, and removes
    /// every other sandbox left on disk (a pool's, or one whose record was lost). Returns
    /// (adopted, removed). Blocking work runs on the blocking pool.
    pub async fn restore(self: &Arc<Self>) -> Result<(usize, usize), ApiError> {
        let records = persist::db(&self.store, |s| s.all_sandboxes()).await?;
        let runtime = self.runtime.clone();
        let (adopted, dead): (Vec<_>, Vec<_>) = tokio::task::spawn_blocking(move || {
            let mut adopted = Vec::new();
            let mut dead = Vec::new();
            for rec in records {
                match Sandbox::adopt(&runtime, &rec.sandbox_id) {
                    Some(sb) => adopted.push((rec, sb)),
                    None => dead.push(rec.sandbox_id),
                }
            }
            (adopted, dead)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        for id in &dead {
            self.forget(id).await;
        }
        let count = adopted.len();
        for (rec, sb) in adopted {
            let entry = Arc::new(Entry {
                id: rec.sandbox_id.clone(),
                team: rec.team_id.as_str().to_string(),
                template_id: rec.template_id,
                alias: rec.alias,
                started_at: rec.started_at,
                metadata: rec.metadata,
                envd_token: rec.envd_access_token.expose().to_string(),
                cpu_count: rec.cpu_count,
                memory_mb: u64::from(rec.memory_mb),
                disk_mb: u64::from(rec.disk_mb),
                auto_pause: false,
                // The firewall table was rebuilt at start: an adopted sandbox's network is
                // gone (its links went with the old pool), never silently widened.
                network: None,
                sandbox: Arc::new(sb),
                mutable: Mutex::new(entry::Mutable {
                    end_at: rec.end_at,
                    status: persist::status_from_store(rec.status),
                    last_cpu: None,
                }),
            });
            tracing::info!(sandbox_id = %entry.id, "sandbox adopted after a restart");
            self.write().insert(entry.id.clone(), entry);
        }
        let known: Vec<String> = self.read().keys().cloned().collect();
        let runtime = self.runtime.clone();
        let removed = tokio::task::spawn_blocking(move || {
            let mut removed = 0;
            for id in runtime.sandbox_ids_on_disk() {
                if known.contains(&id) {
                    continue;
                }
                if let Err(e) = runtime.remove_leftover(&id) {
                    tracing::warn!(sandbox_id = %id, error = %e, "could not fully remove a leftover sandbox");
                }
                removed += 1;
            }
            removed
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        for t in self.templates.values() {
            t.pool.resize(t.config.pool_size);
        }
        Ok((count, removed))
    }
}
