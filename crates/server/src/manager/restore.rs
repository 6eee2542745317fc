//! Taking sandboxes back after a restart.

use std::sync::Arc;

use bulkhead_runtime::Sandbox;

use super::{Entry, Manager, ManagerError, persist};

impl Manager {
    /// After a restart: takes back every recorded sandbox that still runs (its processes,
    /// files, paused state and every recorded setting, auto-pause included), forgets the
    /// records of those that died, and removes every other sandbox left on disk (a pool's,
    /// or one whose record was lost). Then fills the pools. Returns (adopted, removed).
    /// Blocking work runs on the blocking pool.
    ///
    /// # Errors
    /// Only when the records cannot be read.
    pub async fn restore(self: &Arc<Self>) -> Result<(usize, usize), ManagerError> {
        let records =
            persist::db(&self.store, "reading the sandboxes", |s| s.all_sandboxes()).await?;
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
        .await?;
        for id in &dead {
            self.forget(id).await;
        }
        let count = adopted.len();
        for (rec, sb) in adopted {
            let entry = Arc::new(Entry::new(rec, sb));
            tracing::info!(sandbox_id = %entry.id(), "sandbox adopted after a restart");
            self.write().insert(entry.id().to_string(), entry);
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
        .await?;
        let templates: Vec<_> = self
            .templates
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for t in templates {
            t.pool.resize(t.config.pool_size);
        }
        Ok((count, removed))
    }
}
