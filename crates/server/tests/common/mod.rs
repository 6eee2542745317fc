//! A small in-memory [`SandboxBackend`] for the API's fast tests: rows in a map, no
//! processes. It follows the manager's rules closely enough for the API to be exercised
//! (teams, idempotency keys, pause and resume, timeouts) and pages with the manager's own
//! list engine; everything about real sandboxes is tested end to end elsewhere.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bulkhead_server::clock;
use bulkhead_server::manager::{
    Connected, CreateRequest, EnvdError, Invalid, ListPage, ListQuery, ManagerError, MetricSample,
    MetricsWindow, SandboxBackend, SandboxRecord, SandboxStatus, TeamId,
};
use bulkhead_store::Secret;

/// Templates it knows: `base`, also answering to `python`. Two more fail on purpose:
/// `full` (no capacity) and `broken` (an internal failure).
pub struct Memory {
    rows: Mutex<HashMap<String, SandboxRecord>>,
    next: AtomicU64,
}

impl Memory {
    pub fn new() -> Self {
        Self {
            rows: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        }
    }

    fn with<R>(
        &self,
        team: &TeamId,
        id: &str,
        f: impl FnOnce(&mut SandboxRecord) -> Result<R, ManagerError>,
    ) -> Result<R, ManagerError> {
        let mut rows = self.rows.lock().unwrap();
        match rows.get_mut(id) {
            Some(r) if r.team_id == *team => f(r),
            _ => Err(ManagerError::SandboxNotFound { id: id.to_string() }),
        }
    }
}

fn in_secs(secs: i64) -> clock::Timestamp {
    clock::plus(clock::now(), Duration::from_secs(secs.unsigned_abs()))
}

impl SandboxBackend for Memory {
    async fn create(
        &self,
        team: &TeamId,
        req: CreateRequest,
    ) -> Result<SandboxRecord, ManagerError> {
        // Like a server without a sandbox network: internet access is refused.
        if req.network.internet == Some(true) {
            return Err(Invalid::InternetAccess.into());
        }
        let mut rows = self.rows.lock().unwrap();
        if let Some(key) = &req.idempotency_key
            && let Some(r) = rows
                .values()
                .find(|r| r.team_id == *team && r.idempotency_key.as_ref() == Some(key))
        {
            return Ok(r.clone());
        }
        let (template_id, alias) = match req.template.as_str() {
            "base" => ("base", None),
            "python" => ("base", Some("python".to_string())),
            "full" => {
                return Err(ManagerError::NoCapacity(
                    bulkhead_runtime::RuntimeError::UidsExhausted(4),
                ));
            }
            "broken" => return Err(ManagerError::EnvdSetup(EnvdError::Status("500".into()))),
            other => {
                return Err(ManagerError::TemplateNotFound {
                    template: other.to_string(),
                });
            }
        };
        let timeout = match req.timeout {
            None => 300,
            Some(t) if t <= 0 => return Err(Invalid::CreateTimeout.into()),
            Some(t) => t,
        };
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let started_at = clock::now();
        let rec = SandboxRecord {
            sandbox_id: format!("mem{n:04}"),
            team_id: team.clone(),
            template_id: template_id.to_string(),
            alias,
            started_at,
            end_at: clock::plus(started_at, Duration::from_secs(timeout.unsigned_abs())),
            status: SandboxStatus::Running,
            metadata: req.metadata,
            envd_access_token: Secret::new(format!("token-{n}")),
            cpu_count: 2,
            memory_mb: 512,
            disk_mb: 1024,
            idempotency_key: req.idempotency_key,
            auto_pause: req.auto_pause,
            auto_pause_memory: req.auto_pause_memory,
        };
        rows.insert(rec.sandbox_id.clone(), rec.clone());
        Ok(rec)
    }

    async fn get(&self, team: &TeamId, id: &str) -> Result<SandboxRecord, ManagerError> {
        self.with(team, id, |r| Ok(r.clone()))
    }

    async fn list(&self, team: &TeamId, query: &ListQuery) -> Result<ListPage, ManagerError> {
        let rows: Vec<SandboxRecord> = self
            .rows
            .lock()
            .unwrap()
            .values()
            .filter(|r| r.team_id == *team)
            .cloned()
            .collect();
        query.page(rows)
    }

    async fn kill(&self, team: &TeamId, id: &str) -> Result<(), ManagerError> {
        self.with(team, id, |_| Ok(()))?;
        self.rows.lock().unwrap().remove(id);
        Ok(())
    }

    async fn set_timeout(&self, team: &TeamId, id: &str, seconds: i64) -> Result<(), ManagerError> {
        self.with(team, id, |r| {
            if seconds < 0 {
                return Err(Invalid::NegativeTimeout.into());
            }
            r.end_at = in_secs(seconds);
            Ok(())
        })
    }

    async fn connect(
        &self,
        team: &TeamId,
        id: &str,
        timeout: Option<i64>,
    ) -> Result<Connected, ManagerError> {
        self.with(team, id, |r| {
            let resumed = r.status == SandboxStatus::Paused;
            r.status = SandboxStatus::Running;
            let wanted = in_secs(timeout.filter(|t| *t > 0).unwrap_or(300));
            if resumed || wanted > r.end_at {
                r.end_at = wanted;
            }
            Ok(Connected {
                record: r.clone(),
                resumed,
            })
        })
    }

    async fn resume(
        &self,
        team: &TeamId,
        id: &str,
        timeout: Option<i64>,
    ) -> Result<SandboxRecord, ManagerError> {
        if self.get(team, id).await?.status == SandboxStatus::Running {
            return Err(ManagerError::AlreadyRunning { id: id.to_string() });
        }
        Ok(self.connect(team, id, timeout).await?.record)
    }

    async fn pause(&self, team: &TeamId, id: &str, _memory: bool) -> Result<(), ManagerError> {
        self.with(team, id, |r| {
            if r.status == SandboxStatus::Paused {
                return Err(ManagerError::AlreadyPaused { id: id.to_string() });
            }
            r.status = SandboxStatus::Paused;
            Ok(())
        })
    }

    async fn metrics(
        &self,
        team: &TeamId,
        id: &str,
        window: MetricsWindow,
    ) -> Result<Vec<MetricSample>, ManagerError> {
        if let (Some(start), Some(end)) = (window.start, window.end)
            && start > end
        {
            return Err(Invalid::MetricsWindow { start, end }.into());
        }
        self.with(team, id, |r| Ok(vec![sample_of(r)]))
    }

    async fn metrics_of(
        &self,
        team: &TeamId,
        ids: &[String],
    ) -> Result<Vec<(String, MetricSample)>, ManagerError> {
        Ok(ids
            .iter()
            .filter_map(|id| self.with(team, id, |r| Ok((id.clone(), sample_of(r)))).ok())
            .collect())
    }
}

/// The one sample the in-memory backend gives: now, 1 MiB used.
fn sample_of(r: &SandboxRecord) -> MetricSample {
    MetricSample {
        at: clock::now(),
        cpu_count: r.cpu_count,
        cpu_used_pct: 0.0,
        mem_used: 1 << 20,
        mem_cache: 0,
        mem_total: u64::from(r.memory_mb) << 20,
        disk_used: 0,
        disk_total: u64::from(r.disk_mb) << 20,
    }
}
