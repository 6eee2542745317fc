//! A context: one kernel with its own state, language and working directory. Executions on a
//! context run one at a time, in the order they arrived (a fair lock); different contexts run
//! in parallel.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::InterpreterConfig;
use crate::env;
use crate::error::KernelError;
use crate::execute::{self, CellEnd, Output, Timing};
use crate::kernel::{Kernel, KernelHandle};
use crate::ndjson::OutputLine;

/// How long a hidden cell (env vars, warm-up) may run.
const HIDDEN_CELL_LIMIT: Duration = Duration::from_secs(30);

/// What every context shares: the configuration and the sandbox-wide env vars once known.
pub(crate) struct Shared {
    pub config: InterpreterConfig,
    global_envs: tokio::sync::Mutex<Option<BTreeMap<String, String>>>,
}

impl Shared {
    pub fn new(config: InterpreterConfig) -> Self {
        Self {
            config,
            global_envs: tokio::sync::Mutex::new(None),
        }
    }

    /// The sandbox-wide env vars from envd, asked at most once successfully.
    async fn global_envs(&self, token: Option<&str>) -> Option<BTreeMap<String, String>> {
        let addr = self.config.envd?;
        let mut cached = self.global_envs.lock().await;
        if cached.is_none() {
            match crate::envd::fetch(addr, token).await {
                Ok(envs) => *cached = Some(envs),
                Err(e) => {
                    tracing::warn!(error = %e, "sandbox env vars unavailable; trying again next time");
                    return None;
                }
            }
        }
        cached.clone()
    }
}

/// One execution request, validated.
pub(crate) struct ExecRequest {
    pub code: String,
    pub env_vars: BTreeMap<String, String>,
    pub deadline: Option<Instant>,
    pub access_token: Option<String>,
}

struct Slot {
    kernel: Option<Kernel>,
    globals_applied: bool,
}

/// A context; see the module docs.
pub(crate) struct Context {
    pub id: String,
    pub language: String,
    pub cwd: PathBuf,
    shared: Arc<Shared>,
    slot: tokio::sync::Mutex<Slot>,
    handle: Mutex<Option<KernelHandle>>,
    removed: AtomicBool,
    restarting: AtomicBool,
}

impl Context {
    pub fn new(id: String, language: String, cwd: PathBuf, shared: Arc<Shared>) -> Self {
        Self {
            id,
            language,
            cwd,
            shared,
            slot: tokio::sync::Mutex::new(Slot {
                kernel: None,
                globals_applied: false,
            }),
            handle: Mutex::new(None),
            removed: AtomicBool::new(false),
            restarting: AtomicBool::new(false),
        }
    }

    /// Starts the kernel unless it runs, then runs `warmup` (silently) if given.
    pub async fn start(&self, warmup: Option<&str>) -> Result<(), KernelError> {
        let mut slot = self.slot.lock().await;
        self.ensure(&mut slot).await?;
        if let (Some(code), Some(kernel)) = (warmup, slot.kernel.as_ref()) {
            hidden(kernel, code).await;
        }
        Ok(())
    }

    /// Kills the kernel (ending a running cell, which reports `ContextRestarting`) and starts
    /// a fresh one: every variable is gone afterwards.
    pub async fn restart(&self) -> Result<(), KernelError> {
        self.restarting.store(true, Ordering::SeqCst);
        self.kill_current();
        let mut slot = self.slot.lock().await;
        slot.kernel = None;
        let started = self.ensure(&mut slot).await.map(|_| ());
        self.restarting.store(false, Ordering::SeqCst);
        started
    }

    /// Marks the context removed and kills its kernel; a running cell ends.
    pub fn remove(&self) {
        self.removed.store(true, Ordering::SeqCst);
        self.kill_current();
    }

    /// Resident memory of the kernel, when it runs (without waiting for a running cell).
    pub fn kernel_rss(&self) -> Option<u64> {
        self.slot.try_lock().ok()?.kernel.as_ref()?.rss_bytes()
    }

    fn kill_current(&self) {
        let handle = *self.handle.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = handle {
            h.kill();
        }
    }

    async fn ensure<'a>(&self, slot: &'a mut Slot) -> Result<&'a Kernel, KernelError> {
        let alive = slot
            .kernel
            .as_ref()
            .is_some_and(|k| k.exit_status().is_none());
        if !alive {
            slot.kernel = None;
            slot.globals_applied = false;
            let c = &self.shared.config;
            let command = c
                .kernels
                .get(&self.language)
                .ok_or_else(|| KernelError::Zmq(format!("no kernel for {}", self.language)))?;
            let kernel =
                Kernel::start(command, &self.cwd, &c.runtime_dir, c.kernel_start_timeout).await?;
            tracing::info!(context = %self.id, language = %self.language, "kernel started");
            *self.handle.lock().unwrap_or_else(|p| p.into_inner()) = Some(kernel.handle());
            slot.kernel = Some(kernel);
        }
        slot.kernel
            .as_ref()
            .ok_or_else(|| KernelError::Zmq("no kernel".into()))
    }

    /// Runs one execution, streaming its lines into `tx` and ending with `end_of_execution`.
    /// Waits for the executions queued before it. Skipped when the reader left while queued.
    pub async fn execute(self: Arc<Self>, req: ExecRequest, tx: mpsc::Sender<Bytes>) {
        let mut out = Output::to(tx);
        let mut guard = self.slot.lock().await;
        // Plain field borrows from here on: the kernel and the flags are disjoint.
        let slot = &mut *guard;
        if out.is_closed() {
            return;
        }
        if let Err(e) = self.ensure(slot).await {
            out.send(OutputLine::server_error("KernelStartError", e.to_string()))
                .await;
            out.send(OutputLine::EndOfExecution).await;
            return;
        }
        let Some(kernel) = slot.kernel.as_ref() else {
            return;
        };
        // The sandbox's env vars, on this context's first use.
        if !slot.globals_applied {
            let envs = self.shared.global_envs(req.access_token.as_deref()).await;
            if let Some(envs) = envs {
                if let Some(code) =
                    env::global_cell(&self.language, &envs).filter(|_| !envs.is_empty())
                {
                    hidden(kernel, &code).await;
                }
                slot.globals_applied = true;
            }
        }
        let cells = (!req.env_vars.is_empty())
            .then(|| env::cells(&self.language, &req.env_vars))
            .flatten();
        if let Some(c) = &cells {
            hidden(kernel, &c.set).await;
        }
        let c = &self.shared.config;
        let timing = Timing {
            deadline: req.deadline,
            grace: c.interrupt_grace,
            kill_after: c.restart_after,
            keepalive: c.keepalive,
            settle: c
                .kernels
                .get(&self.language)
                .map_or(Duration::ZERO, |k| k.settle),
        };
        let end = execute::run(kernel, &req.code, false, &mut out, timing).await;
        let restart = match end {
            Ok(CellEnd::Finished(_)) => false,
            Ok(CellEnd::Unresponsive(stop)) => {
                tracing::warn!(context = %self.id, ?stop, "the cell ignored the interrupt; restarting its kernel");
                kernel.handle().kill();
                true
            }
            Ok(CellEnd::KernelDied(status)) => {
                let line = if self.restarting.load(Ordering::SeqCst) {
                    OutputLine::server_error("ContextRestarting", "the context was restarted")
                } else {
                    OutputLine::server_error(
                        "KernelDied",
                        format!(
                            "the kernel exited during the execution ({status}{}); the context was restarted and its state is lost",
                            oom_hint(&status)
                        ),
                    )
                };
                out.send(line).await;
                true
            }
            Err(e) => {
                out.send(OutputLine::server_error("KernelError", e.to_string()))
                    .await;
                true
            }
        };
        out.finish().await;
        drop(out);
        if restart {
            slot.kernel = None;
            if !self.removed.load(Ordering::SeqCst)
                && !self.restarting.load(Ordering::SeqCst)
                && let Err(e) = self.ensure(slot).await
            {
                tracing::warn!(context = %self.id, error = %e, "kernel restart failed; the next execution tries again");
            }
        } else if let (Some(c), Some(kernel)) = (&cells, slot.kernel.as_ref()) {
            hidden(kernel, &c.restore).await;
        }
    }
}

/// Runs a silent cell, output discarded; a failure is logged (the next visible cell shows
/// what is wrong with the kernel).
async fn hidden(kernel: &Kernel, code: &str) {
    let timing = Timing {
        deadline: Some(Instant::now() + HIDDEN_CELL_LIMIT),
        grace: Duration::from_secs(1),
        kill_after: Duration::from_secs(1),
        keepalive: Duration::from_secs(3600),
        settle: Duration::ZERO,
    };
    match execute::run(kernel, code, true, &mut Output::discard(), timing).await {
        Ok(CellEnd::Finished(None)) => {}
        other => tracing::warn!(outcome = ?other, "a hidden cell did not finish"),
    }
}

fn oom_hint(status: &str) -> &'static str {
    if status.contains("SIGKILL") {
        ", most often the out-of-memory killer"
    } else {
        ""
    }
}
