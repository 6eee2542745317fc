//! The timeout reaper: kills (or, with auto-pause, pauses) sandboxes whose end has passed,
//! and removes sandboxes that died outside the server's control.

use std::sync::Arc;
use std::time::Duration;

use bulkhead_store::SandboxStatus;

use super::lifecycle::pause_entry;
use super::{Entry, Manager, destroy};
use crate::clock;

impl Manager {
    /// Runs forever, every 250 ms: sandboxes whose init died on its own (killed from
    /// outside) are removed; sandboxes past their end are paused when they were created
    /// with auto-pause (and then kept until their maximum lifetime), killed otherwise.
    pub async fn reap_expired(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            self.reap_once().await;
        }
    }

    async fn reap_once(&self) {
        self.restart_ended_envds().await;
        let now = clock::now();
        let (dead, expired): (Vec<Arc<Entry>>, Vec<Arc<Entry>>) = {
            let map = self.read();
            let dead = map
                .values()
                .filter(|e| !e.sandbox().is_running())
                .cloned()
                .collect();
            let expired = map
                .values()
                .filter(|e| e.end_at() <= now)
                .cloned()
                .collect();
            (dead, expired)
        };
        for e in dead {
            if self.write().remove(e.id()).is_some() {
                tracing::warn!(sandbox_id = %e.id(), "sandbox died outside the server's control; removing it");
                self.forget(e.id()).await;
                destroy(e).await;
            }
        }
        for e in expired {
            let (auto_pause, memory, status) =
                e.with(|r| (r.auto_pause, r.auto_pause_memory, r.status));
            if auto_pause && status == SandboxStatus::Running {
                let paused = if memory {
                    pause_entry(&e).await
                } else {
                    super::lifecycle::pause_filesystem(&e).await
                };
                match paused {
                    Ok(_) => {
                        tracing::info!(sandbox_id = %e.id(), "sandbox paused at its timeout");
                        // Paused sandboxes are kept until the maximum lifetime.
                        e.with(|r| r.end_at = self.end_limit(r));
                        self.save_status(&e).await;
                        self.save_end(&e).await;
                    }
                    Err(err) => {
                        // Tried again at the next tick; debug, not warn, so a stuck cgroup does not flood the log.
                        tracing::debug!(sandbox_id = %e.id(), error = %crate::report::chain(&err), "could not pause a sandbox at its timeout");
                    }
                }
                continue;
            }
            if self.write().remove(e.id()).is_some() {
                tracing::info!(sandbox_id = %e.id(), "sandbox timed out");
                self.forget(e.id()).await;
                destroy(e).await;
            }
        }
    }

    /// envd died in a running sandbox (OOM-killed by an upload too large for the sandbox's
    /// memory, killed by root inside, a crash): it is started again with the sandbox's token,
    /// environment and workdir, and the sandbox's log says so. Each restart runs on a task of
    /// its own, so a sandbox whose port answers slowly (its root may listen there) never
    /// holds up the reaper for the others; at most one runs per sandbox, and they begin at
    /// most once a second per sandbox.
    async fn restart_ended_envds(&self) {
        let ended: Vec<Arc<Entry>> = self
            .read()
            .values()
            .filter(|e| {
                e.status() == SandboxStatus::Running
                    && !e.is_filesystem_paused()
                    && super::envd::has_ended(e.id())
            })
            .cloned()
            .collect();
        for e in ended {
            let Some(n) = e.begin_envd_restart(Duration::from_secs(1)) else {
                continue;
            };
            let workdir = self
                .template(&e.with(|r| r.template_id.clone()))
                .and_then(|t| t.config.workdir.clone());
            let init = super::envd::InitRequest {
                env_vars: e.env_vars(),
                access_token: e.with(|r| r.envd_access_token.expose().to_string()),
                default_user: "user".into(),
                default_workdir: workdir,
            };
            tokio::spawn(async move {
                let sb = e.sandbox().clone();
                let restarted = tokio::task::spawn_blocking(move || -> Result<(), String> {
                    super::envd::start(&sb)?;
                    super::envd::init(&sb, &init).map_err(|e| e.to_string())
                })
                .await;
                e.end_envd_restart();
                let dir = e.sandbox().state_dir().to_owned();
                match restarted {
                    Ok(Ok(())) => {
                        crate::prometheus::METRICS.envd_restart();
                        tracing::warn!(sandbox_id = %e.id(), restarts = n, "envd died in a running sandbox; started it again");
                        super::sandbox_logs::note(
                            &dir,
                            "warn",
                            &format!("envd died and was started again (restart {n})"),
                        );
                    }
                    Ok(Err(err)) => {
                        tracing::warn!(sandbox_id = %e.id(), error = %err, "envd died and could not be started again");
                        super::sandbox_logs::note(
                            &dir,
                            "error",
                            &format!("envd died and could not be started again: {err}"),
                        );
                    }
                    Err(err) => {
                        tracing::warn!(sandbox_id = %e.id(), error = %err, "envd restart task failed")
                    }
                }
            });
        }
    }
}
