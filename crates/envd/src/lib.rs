//! `bulkhead-envd`: the daemon that runs inside every sandbox and speaks the E2B envd
//! protocol (port 49983), so the official, unmodified `e2b` SDKs can drive the sandbox.
//!
//! It owns: the Connect JSON services `process.Process` (start, attach, input, signals, PTY)
//! and `filesystem.Filesystem` (stat, list, mkdir, move, remove, watch), the plain HTTP routes
//! `/files` (upload/download, signed URLs), `/health`, `/envs`, `/metrics` and `/init`, the access-token
//! check and user selection. It spawns user processes itself (uid/gid/groups from the
//! sandbox's passwd and group files, one session per process, PTYs) and reaps them.
//!
//! It does not own isolation: namespaces, cgroups and seccomp are applied by the runtime
//! before envd starts, and every child inherits them.
//!
//! Threads: everything runs on the caller's tokio runtime (multi-threaded or not); blocking
//! filesystem work goes through `spawn_blocking`, PTY output is read on blocking threads and
//! `notify` runs one thread per watcher.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! bulkhead_envd::serve(bulkhead_envd::EnvdConfig::default(), listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]
#![deny(unsafe_code)]

mod auth;
#[cfg(feature = "client")]
pub mod client;
mod config;
mod connect;
mod files;
mod filesystem;
mod identity;
mod metrics;
mod paths;
mod process;
mod routes;
mod state;
mod sys;
mod users;

use std::future::Future;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::serve::ListenerExt;

pub use auth::file_signature;
pub use config::{AccessToken, ConfigError, EnvdConfig};
pub use filesystem::watch::MAX_PENDING_EVENTS as MAX_PENDING_WATCH_EVENTS;

/// The envd protocol version this implementation answers to, for the control plane's
/// `envdVersion`: every feature gate of the SDKs up to reference envd 0.6.13 is implemented.
pub const ENVD_VERSION: &str = "0.6.13";

/// The port the SDKs expect envd on.
pub const ENVD_PORT: u16 = 49983;

/// Why [`serve`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is invalid.
    #[error("invalid envd configuration")]
    Config(#[from] ConfigError),
    /// The HTTP server failed.
    #[error("envd http server failed")]
    Io(#[from] std::io::Error),
}

/// Builds the router (for `Router::oneshot` tests or embedding). The config must be valid.
pub fn router(config: EnvdConfig) -> Router {
    let state = state::Envd::new(config);
    let p = "/process.Process/";
    let f = "/filesystem.Filesystem/";
    use filesystem::{rpc as fs, watch};
    use process::rpc as proc;
    Router::new()
        .route(&format!("{p}Start"), post(proc::start))
        .route(&format!("{p}Connect"), post(proc::connect))
        .route(&format!("{p}List"), post(proc::list))
        .route(&format!("{p}SendInput"), post(proc::send_input))
        .route(&format!("{p}StreamInput"), post(proc::stream_input))
        .route(&format!("{p}SendSignal"), post(proc::send_signal))
        .route(&format!("{p}Update"), post(proc::update))
        .route(&format!("{p}CloseStdin"), post(proc::close_stdin))
        .route(&format!("{f}Stat"), post(fs::stat))
        .route(&format!("{f}MakeDir"), post(fs::make_dir))
        .route(&format!("{f}Move"), post(fs::move_))
        .route(&format!("{f}ListDir"), post(fs::list_dir))
        .route(&format!("{f}Remove"), post(fs::remove))
        .route(&format!("{f}WatchDir"), post(watch::watch_dir))
        .route(&format!("{f}CreateWatcher"), post(watch::create_watcher))
        .route(
            &format!("{f}GetWatcherEvents"),
            post(watch::get_watcher_events),
        )
        .route(&format!("{f}RemoveWatcher"), post(watch::remove_watcher))
        .route(
            "/files",
            get(files::download::download).post(files::upload::upload),
        )
        .route("/health", get(routes::health))
        .route("/envs", get(routes::envs))
        .route("/metrics", get(metrics::metrics))
        .route("/init", post(routes::init))
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .with_state(state)
}

/// Validates `config` and serves envd on `listener` until `shutdown` resolves. Accepted
/// sockets get `TCP_NODELAY`. Processes started by envd are not killed on shutdown.
pub async fn serve(
    config: EnvdConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    config.validate()?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, version = %config.version, "envd listening");
    let app = router(config);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Renders an error and its sources as `outer: inner: root` (for messages and log fields).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        s.push_str(": ");
        s.push_str(&src.to_string());
        cur = src.source();
    }
    s
}
