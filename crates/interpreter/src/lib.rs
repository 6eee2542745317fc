//! The code-interpreter execution server: E2B's port-49999 API (`POST /execute` streaming
//! NDJSON, `/contexts`, `/health`; spec §4) in front of Jupyter kernels that it starts itself
//! and speaks to directly over ZMQ. No Jupyter server, no websocket hop.
//!
//! Owns: kernel processes (one per context, each in its own process group), the mapping from
//! Jupyter messages to stream lines, per-execution env vars, deadlines (interrupt, then kill
//! and restart), queueing of executions per context. Does not own: the sandbox, its user or
//! its seccomp filter (the caller starts this server inside them), nor the kernels'
//! packages (the root filesystem brings them).
//!
//! Threading: everything runs on the caller's tokio runtime; one task per execution and two
//! per kernel (its iopub and shell readers) plus its exit watcher.

#![warn(missing_docs)]

mod config;
mod context;
mod contexts;
mod env;
mod envd;
mod error;
mod execute;
mod kernel;
mod mime;
mod ndjson;
mod routes;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post};

pub use config::{CONNECTION_FILE, InterpreterConfig, KernelCommand, normalise_language};
pub use error::{ConfigError, KernelError, ServeError};
pub use ndjson::OutputLine;

/// The port E2B's SDKs reach the interpreter on.
pub const INTERPRETER_PORT: u16 = 49999;

/// The warm-up cell run on pre-warmed contexts: the kernel's first execution costs more than
/// the next ones (lazy imports in IPython), so it is paid before a user waits.
const WARMUP: &str = "import os, sys, json";

/// Serves until `shutdown` resolves. Starts the default context of every language in
/// `config.prewarm` at once (in the background; `GET /ready` tells when they run). Kernels
/// are killed when the server returns.
pub async fn serve(
    config: InterpreterConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    config.validate()?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(context::Shared::new(config));
    let (ready_tx, ready) = tokio::sync::watch::channel(routes::Readiness::Starting);
    let app = Arc::new(routes::App {
        shared: shared.clone(),
        contexts: contexts::Contexts::new(shared.clone()),
        ready,
    });
    let warm = app.clone();
    tokio::spawn(async move {
        let mut state = routes::Readiness::Ready;
        for lang in &warm.shared.config.prewarm {
            let started = match warm.contexts.default_for(lang) {
                Ok(ctx) => ctx.start(Some(WARMUP)).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = started {
                tracing::error!(language = %lang, error = %e, "pre-warmed kernel failed to start");
                state =
                    routes::Readiness::Failed(format!("the {lang} kernel failed to start: {e}"));
                break;
            }
        }
        let _ = ready_tx.send(state);
    });
    tracing::info!(%addr, "interpreter listening");
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let result = axum::serve(listener, router(app.clone()))
        .with_graceful_shutdown(shutdown)
        .await;
    for ctx in app.contexts.list() {
        app.contexts.remove(&ctx.id);
    }
    result.map_err(ServeError::Io)
}

fn router(app: Arc<routes::App>) -> Router {
    Router::new()
        .route("/execute", post(routes::execute))
        .route(
            "/contexts",
            post(routes::create_context).get(routes::list_contexts),
        )
        .route("/contexts/{id}", delete(routes::delete_context))
        .route("/contexts/{id}/restart", post(routes::restart_context))
        .route("/health", get(routes::health))
        .route("/ready", get(routes::ready))
        .with_state(app)
}
