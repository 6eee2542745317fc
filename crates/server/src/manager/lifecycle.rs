//! What happens to a registered sandbox: timeouts, pause, resume, kill, metrics. Every
//! change to a row is written through to the store; a failed write is logged and the
//! registry keeps the new value (the store catches up at the next change).

use std::sync::Arc;
use std::time::Duration;

use bulkhead_store::{SandboxRecord, SandboxStatus, TeamId};

use super::backend::Connected;
use super::error::{Invalid, ManagerError};
use super::{Entry, Manager, destroy, persist};
use crate::clock;

impl Manager {
    /// Kills and removes the team's sandbox `id`.
    ///
    /// # Errors
    /// [`ManagerError::SandboxNotFound`] when there is none.
    #[tracing::instrument(skip_all, fields(sandbox_id = %id))]
    pub async fn kill(&self, team: &TeamId, id: &str) -> Result<(), ManagerError> {
        let entry = {
            let mut map = self.write();
            match map.get(id) {
                Some(e) if e.belongs_to(team) => map.remove(id),
                _ => None,
            }
        };
        let entry = entry.ok_or_else(|| ManagerError::not_found(id))?;
        self.forget(entry.id()).await;
        destroy(entry).await;
        tracing::info!(sandbox_id = %id, "sandbox killed");
        Ok(())
    }

    /// Sets the end to now + `seconds`, bounded by the maximum lifetime (0 = now).
    ///
    /// # Errors
    /// [`ManagerError::SandboxNotFound`]; [`Invalid::NegativeTimeout`].
    #[tracing::instrument(skip_all, fields(sandbox_id = %id))]
    pub async fn set_timeout(
        &self,
        team: &TeamId,
        id: &str,
        seconds: i64,
    ) -> Result<(), ManagerError> {
        let entry = self.owned(team, id)?;
        if seconds < 0 {
            return Err(Invalid::NegativeTimeout.into());
        }
        let wanted = clock::plus(clock::now(), Duration::from_secs(seconds.unsigned_abs()));
        entry.with(|r| r.end_at = wanted.min(self.end_limit(r)));
        self.save_end(&entry).await;
        Ok(())
    }

    /// Connects to a sandbox: extends a running one's timeout (never shortens it) or resumes
    /// a paused one, either to now + `timeout` seconds (the default when absent or not
    /// positive).
    ///
    /// # Errors
    /// [`ManagerError::SandboxNotFound`]; an internal error when thawing fails.
    #[tracing::instrument(skip_all, fields(sandbox_id = %id))]
    pub async fn connect(
        &self,
        team: &TeamId,
        id: &str,
        timeout: Option<i64>,
    ) -> Result<Connected, ManagerError> {
        let entry = self.owned(team, id)?;
        let resumed = entry.status() == SandboxStatus::Paused;
        if resumed {
            if entry.swap_filesystem_paused(false) {
                self.restart_daemons(&entry).await?;
            } else {
                set_frozen(&entry, false).await?;
                // After a server restart the kind of pause is not known: a sandbox whose envd
                // is gone was paused with its filesystem only.
                let sb = entry.sandbox().clone();
                let alive = tokio::task::spawn_blocking(move || {
                    sb.connect_tcp(bulkhead_envd::ENVD_PORT, Duration::from_millis(500))
                        .is_ok()
                })
                .await?;
                if !alive {
                    self.restart_daemons(&entry).await?;
                }
            }
            entry.with(|r| r.status = SandboxStatus::Running);
            self.save_status(&entry).await;
        }
        let secs = timeout
            .filter(|t| *t > 0)
            .map(i64::unsigned_abs)
            .unwrap_or(self.config.default_timeout.as_secs());
        let wanted = clock::plus(clock::now(), Duration::from_secs(secs));
        entry.with(|r| {
            let wanted = wanted.min(self.end_limit(r));
            if resumed || wanted > r.end_at {
                r.end_at = wanted;
            }
        });
        self.save_end(&entry).await;
        Ok(Connected {
            record: entry.record(),
            resumed,
        })
    }

    /// The legacy resume: [`connect`](Self::connect) for a paused sandbox only.
    ///
    /// # Errors
    /// [`ManagerError::AlreadyRunning`] when it runs, else as `connect`.
    #[tracing::instrument(skip_all, fields(sandbox_id = %id))]
    pub async fn resume(
        &self,
        team: &TeamId,
        id: &str,
        timeout: Option<i64>,
    ) -> Result<SandboxRecord, ManagerError> {
        if self.owned(team, id)?.status() == SandboxStatus::Running {
            return Err(ManagerError::AlreadyRunning { id: id.to_string() });
        }
        Ok(self.connect(team, id, timeout).await?.record)
    }

    /// Freezes a sandbox.
    ///
    /// # Errors
    /// [`ManagerError::SandboxNotFound`], [`ManagerError::AlreadyPaused`], or an internal
    /// error when freezing fails.
    #[tracing::instrument(skip_all, fields(sandbox_id = %id))]
    pub async fn pause(&self, team: &TeamId, id: &str, memory: bool) -> Result<(), ManagerError> {
        let entry = self.owned(team, id)?;
        let paused = if memory {
            pause_entry(&entry).await?
        } else {
            pause_filesystem(&entry).await?
        };
        self.save_status(&entry).await;
        if paused {
            Ok(())
        } else {
            Err(ManagerError::AlreadyPaused { id: id.to_string() })
        }
    }

    /// After a filesystem-only pause: starts envd (and the template's service and code
    /// interpreter) again and gives envd the sandbox's token and environment, as at a
    /// hand-over. Files written before the pause are where they were; processes are new.
    pub(crate) async fn restart_daemons(&self, entry: &Arc<Entry>) -> Result<(), ManagerError> {
        let template_id = entry.with(|r| r.template_id.clone());
        let template = self
            .template(&template_id)
            .ok_or(ManagerError::TemplateNotFound {
                template: template_id,
            })?;
        let init = super::envd::InitRequest {
            env_vars: entry.env_vars(),
            access_token: entry.with(|r| r.envd_access_token.expose().to_string()),
            default_user: "user".into(),
            default_workdir: template.config.workdir.clone(),
        };
        let sb = entry.sandbox().clone();
        let (code_interpreter, service) = (
            template.config.code_interpreter,
            template.config.service.clone(),
        );
        let started = tokio::task::spawn_blocking(move || -> Result<(), String> {
            let _ = sb.set_frozen(false);
            super::envd::start(&sb)?;
            if let Some(cmd) = &service {
                super::service::start(&sb, cmd)?;
            }
            if code_interpreter {
                super::interpreter::start(&sb)?;
            }
            super::envd::init(&sb, &init).map_err(|e| e.to_string())
        })
        .await?;
        started.map_err(|message| ManagerError::Restart {
            id: entry.id().to_string(),
            message,
        })?;
        tracing::info!(sandbox_id = %entry.id(), "sandbox resumed from a filesystem-only pause");
        Ok(())
    }

    /// The latest end a sandbox may have: its start plus the maximum lifetime.
    pub(crate) fn end_limit(&self, r: &SandboxRecord) -> clock::Timestamp {
        clock::plus(r.started_at, self.config.max_lifetime)
    }

    /// Deletes the sandbox's row; a failure is logged (the row is removed at next start).
    pub(crate) async fn forget(&self, id: &str) {
        let id2 = id.to_string();
        if let Err(e) = persist::db(&self.store, "deleting the sandbox", move |s| {
            s.delete_sandbox(&id2)
        })
        .await
        {
            tracing::warn!(sandbox_id = %id, error = %crate::report::chain(&e), "could not delete the sandbox record");
        }
    }

    pub(crate) async fn save_end(&self, entry: &Entry) {
        let (id, end) = (entry.id().to_string(), entry.end_at());
        if let Err(e) = persist::db(&self.store, "recording the timeout", move |s| {
            s.set_sandbox_end(&id, end)
        })
        .await
        {
            tracing::warn!(sandbox_id = %entry.id(), error = %crate::report::chain(&e), "could not record the new timeout");
        }
    }

    pub(crate) async fn save_status(&self, entry: &Entry) {
        let (id, st) = (entry.id().to_string(), entry.status());
        if let Err(e) = persist::db(&self.store, "recording the state", move |s| {
            s.set_sandbox_state(&id, st)
        })
        .await
        {
            tracing::warn!(sandbox_id = %entry.id(), error = %crate::report::chain(&e), "could not record the sandbox state");
        }
    }
}

/// Freezes a running sandbox; `Ok(false)` when it was already paused.
pub(crate) async fn pause_entry(entry: &Arc<Entry>) -> Result<bool, ManagerError> {
    if entry.status() == SandboxStatus::Paused {
        return Ok(false);
    }
    set_frozen(entry, true).await?;
    entry.with(|r| r.status = SandboxStatus::Paused);
    Ok(true)
}

/// A filesystem-only pause: every process but the sandbox's init ends (envd included), the
/// files stay; [`Manager::connect`] starts the daemons again. `Ok(false)` when already paused.
pub(crate) async fn pause_filesystem(entry: &Arc<Entry>) -> Result<bool, ManagerError> {
    if entry.status() == SandboxStatus::Paused {
        return Ok(false);
    }
    let sb = entry.sandbox().clone();
    // Marked before the processes end, so the reaper does not take envd's end for a death
    // to restart from.
    let was = entry.swap_filesystem_paused(true);
    let ended = tokio::task::spawn_blocking(move || sb.end_processes()).await;
    if !matches!(ended, Ok(Ok(()))) {
        entry.swap_filesystem_paused(was);
    }
    ended?.map_err(|source| ManagerError::Freeze {
        action: "pausing",
        id: entry.id().to_string(),
        source,
    })?;
    entry.with(|r| r.status = SandboxStatus::Paused);
    tracing::info!(sandbox_id = %entry.id(), "sandbox paused (filesystem only: its processes ended)");
    Ok(true)
}

async fn set_frozen(entry: &Arc<Entry>, frozen: bool) -> Result<(), ManagerError> {
    let sb = entry.sandbox().clone();
    tokio::task::spawn_blocking(move || sb.set_frozen(frozen))
        .await?
        .map_err(|source| ManagerError::Freeze {
            action: if frozen { "pausing" } else { "resuming" },
            id: entry.id().to_string(),
            source,
        })
}
