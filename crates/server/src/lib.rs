//! Bulkhead's server: the E2B-compatible control plane and the edge proxy on one port.
//!
//! Owns the registry of live sandboxes (per team), their timeouts, pause/resume, and the
//! routing of sandbox traffic into each sandbox's network namespace. [`api`] owns the wire
//! (routes, keys, bodies, error bodies) and reaches sandboxes through
//! [`manager::SandboxBackend`]; [`manager`] owns the sandboxes and speaks no HTTP. Does not
//! own isolation (`bulkhead-runtime`), the in-sandbox protocol (`bulkhead-envd`) or storage
//! of keys and rows (`bulkhead-store`, keys behind [`api::auth::Authenticator`]).
//!
//! Threads: runs on the caller's tokio runtime (one task per connection, plus the timeout
//! reaper started by [`serve`]); launches, destroys, cgroup reads and SQLite go to the
//! blocking pool.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod bucket;
pub mod clock;
pub mod listener;
pub mod manager;
pub mod prometheus;
pub mod proxy;
mod report;
pub mod sandbox_http;
pub mod sdk_builds;
pub mod signed_url;
pub mod snapshots;
pub mod state;
pub mod templates;
pub mod tls;

use std::future::Future;
use std::sync::Arc;

use axum::Router;

pub use listener::ConnectionLimits;
pub use manager::{Manager, ManagerConfig, StorageConfig, TemplateConfig};
pub use state::AppState;

/// The whole HTTP application: proxy middleware in front of the API routes.
pub fn app(state: AppState) -> Router {
    api::router::<Manager>()
        .merge(api::templates::router())
        .merge(api::templates::image_router())
        .merge(api::sdk_builds::router())
        .merge(api::snapshots::router())
        .merge(api::validate::router())
        .merge(api::observability::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            proxy::route,
        ))
        .with_state(state)
}

/// Serves `state` on `listener` until `shutdown` resolves, under `limits` (connection caps
/// and timeouts that hold before authentication: [`listener`]), with TCP_NODELAY on every
/// accepted connection (without it, small requests on reused connections wait ~40 ms for
/// delayed ACKs). Starts the timeout reaper.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_tls(state, listener, limits, None, shutdown).await
}

/// [`serve`], and with `tls` also HTTPS on the same port: each connection's first byte
/// tells a TLS ClientHello from plain HTTP ([`tls::accept`]).
pub async fn serve_with_tls(
    state: AppState,
    listener: tokio::net::TcpListener,
    limits: ConnectionLimits,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let reaper = tokio::spawn(Arc::clone(&state.manager).reap_expired());
    let sampler = tokio::spawn(Arc::clone(&state.manager).sample_metrics());
    let result = listener::serve_connections(listener, app(state), limits, tls, shutdown).await;
    reaper.abort();
    sampler.abort();
    result
}
