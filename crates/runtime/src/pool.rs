//! Warm pools: sandboxes started ahead of time, so that a create is a hand-over.
//!
//! A pool holds ready sandboxes for one [`PoolKey`] (layer stack, limits, binds). A filler
//! thread keeps it at its target size; [`Pool::take`] hands one out at once and wakes the
//! filler. Pooled sandboxes already run their init (hostname = their id); nothing in them has
//! run user code yet.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::RuntimeError;
use crate::limits::Limits;
use crate::runtime::Runtime;
use crate::sandbox::Sandbox;
use crate::spec::{BindMount, SandboxSpec};

/// What sandboxes in one pool share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolKey {
    /// Layer directories, bottom first.
    pub layers: Vec<PathBuf>,
    /// Limits.
    pub limits: Limits,
    /// Bind mounts.
    pub binds: Vec<BindMount>,
}

impl PoolKey {
    /// A spec for a new sandbox with a fresh id.
    pub fn spec(&self) -> SandboxSpec {
        SandboxSpec {
            id: crate::spec::new_id(),
            layers: self.layers.clone(),
            limits: self.limits.clone(),
            binds: self.binds.clone(),
            writable_dir: None,
        }
    }
}

struct State {
    ready: VecDeque<Sandbox>,
    target: usize,
    stop: bool,
    last_error: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Work done on every sandbox before it counts as ready (e.g. starting a daemon in it), so
/// that a hand-over includes it. Runs on the filler thread, or on the caller's thread for a
/// cold [`Pool::create`].
pub type Prepare = Arc<dyn Fn(&Sandbox) -> Result<(), String> + Send + Sync>;

/// A warm pool for one key.
pub struct Pool {
    runtime: Runtime,
    key: PoolKey,
    shared: Arc<Shared>,
    filler: Option<JoinHandle<()>>,
    prepare: Option<Prepare>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("key", &self.key)
            .field("ready", &self.ready())
            .finish()
    }
}

impl Pool {
    /// Starts a pool that keeps `size` sandboxes ready (0 = no pre-warming).
    pub fn new(runtime: Runtime, key: PoolKey, size: usize) -> Self {
        Self::with_prepare(runtime, key, size, None)
    }

    /// Like [`Pool::new`], running `prepare` on each sandbox before it is ready. A sandbox
    /// whose preparation fails is destroyed.
    pub fn with_prepare(
        runtime: Runtime,
        key: PoolKey,
        size: usize,
        prepare: Option<Prepare>,
    ) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                ready: VecDeque::new(),
                target: size,
                stop: false,
                last_error: None,
            }),
            wake: Condvar::new(),
        });
        let filler = {
            let (runtime, key, shared, prepare) = (
                runtime.clone(),
                key.clone(),
                shared.clone(),
                prepare.clone(),
            );
            std::thread::Builder::new()
                .name("bulkhead-pool".into())
                .spawn(move || fill(runtime, key, shared, prepare))
                .ok()
        };
        Self {
            runtime,
            key,
            shared,
            filler,
            prepare,
        }
    }

    /// Sandboxes ready right now.
    pub fn ready(&self) -> usize {
        self.shared.lock().ready.len()
    }

    /// The last error the filler hit, if any (it keeps retrying with backoff).
    pub fn last_error(&self) -> Option<String> {
        self.shared.lock().last_error.clone()
    }

    /// Changes the target size.
    pub fn resize(&self, size: usize) {
        self.shared.lock().target = size;
        self.shared.wake.notify_all();
    }

    /// Hands out a ready sandbox, if any. Never blocks on a launch.
    pub fn take(&self) -> Option<Sandbox> {
        let mut st = self.shared.lock();
        let mut sb = st.ready.pop_front();
        drop(st);
        self.shared.wake.notify_all();
        // A pooled sandbox may have died (OOM of the host, a kill from outside): skip it.
        while let Some(s) = sb.take() {
            if s.is_running() {
                return Some(s);
            }
            let _ = s.destroy();
            sb = self.shared.lock().ready.pop_front();
        }
        None
    }

    /// A sandbox from the pool, or a fresh (prepared) one when the pool is empty.
    pub fn create(&self) -> Result<Sandbox, RuntimeError> {
        match self.take() {
            Some(s) => Ok(s),
            None => create_prepared(&self.runtime, &self.key, self.prepare.as_ref()),
        }
    }

    /// Stops the filler and destroys every pooled sandbox.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(h) = self.filler.take() {
            let _ = h.join();
        }
        let drained: Vec<Sandbox> = self.shared.lock().ready.drain(..).collect();
        for s in drained {
            let _ = s.destroy();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop();
    }
}

fn create_prepared(
    runtime: &Runtime,
    key: &PoolKey,
    prepare: Option<&Prepare>,
) -> Result<Sandbox, RuntimeError> {
    let sandbox = runtime.create(key.spec())?;
    if let Some(prepare) = prepare
        && let Err(message) = prepare(&sandbox)
    {
        let id = sandbox.id().to_string();
        let _ = sandbox.destroy();
        return Err(RuntimeError::Prepare { id, message });
    }
    Ok(sandbox)
}

fn fill(runtime: Runtime, key: PoolKey, shared: Arc<Shared>, prepare: Option<Prepare>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        {
            let mut st = shared.lock();
            while !st.stop && st.ready.len() >= st.target {
                st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if st.stop {
                return;
            }
        }
        match create_prepared(&runtime, &key, prepare.as_ref()) {
            Ok(s) => {
                backoff = Duration::from_millis(50);
                let mut st = shared.lock();
                if st.stop {
                    drop(st);
                    let _ = s.destroy();
                    return;
                }
                st.last_error = None;
                st.ready.push_back(s);
            }
            Err(e) => {
                tracing::warn!(error = %e, "warm pool could not start a sandbox");
                shared.lock().last_error = Some(e.to_string());
                let st = shared.lock();
                let _ = shared.wake.wait_timeout(st, backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}
