//! Handlers of the unary `filesystem.Filesystem` RPCs.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::FsError;
use super::ops;
use crate::auth::rpc_user;
use crate::connect::json::de_u32;
use crate::connect::unary::Unary;
use crate::connect::{Code, ConnectError, unary_ok};
use crate::identity;
use crate::paths;
use crate::state::SharedState;
use crate::users::{Names, User};

/// A request with one path (`Stat`, `MakeDir`, `Remove`).
#[derive(Debug, Deserialize)]
pub struct PathRequest {
    /// The path.
    #[serde(default)]
    pub path: String,
}

/// `MoveRequest`.
#[derive(Debug, Deserialize)]
pub struct MoveRequest {
    /// From.
    #[serde(default)]
    pub source: String,
    /// To.
    #[serde(default)]
    pub destination: String,
}

/// `ListDirRequest`.
#[derive(Debug, Deserialize)]
pub struct ListDirRequest {
    /// The directory.
    #[serde(default)]
    pub path: String,
    /// Levels to descend (0 = 1).
    #[serde(default, deserialize_with = "de_u32")]
    pub depth: u32,
}

/// Resolves the caller and runs a blocking operation with the user and the name maps, on a
/// thread acting as that user ([`identity`]): permissions and symlinks are the user's.
async fn with_user<T: Send + 'static>(
    state: &SharedState,
    headers: &HeaderMap,
    op: impl FnOnce(&User, &Names, Option<&std::path::Path>) -> Result<T, FsError> + Send + 'static,
) -> Result<T, ConnectError> {
    let user = rpc_user(state, headers)?;
    let workdir = state.settings().default_workdir;
    let users = state.users.clone();
    tokio::task::spawn_blocking(move || {
        let names = users.names();
        let _acting = identity::act_as(&user).map_err(|e| {
            ConnectError::new(Code::Internal, format!("acting as {}: {e}", user.name))
        })?;
        op(&user, &names, workdir.as_deref()).map_err(ConnectError::from)
    })
    .await
    .map_err(|e| ConnectError::new(Code::Internal, format!("filesystem task failed: {e}")))?
}

fn reply<T: serde::Serialize>(r: Result<T, ConnectError>) -> Response {
    match r {
        Ok(v) => unary_ok(&v),
        Err(e) => e.into_response(),
    }
}

/// `Stat`.
#[tracing::instrument(skip_all)]
pub async fn stat(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Unary(req): Unary<PathRequest>,
) -> Response {
    reply(
        with_user(&state, &headers, move |u, n, w| {
            ops::stat(&paths::resolve(&req.path, u, w), n)
                .map(|entry| serde_json::json!({ "entry": entry }))
        })
        .await,
    )
}

/// `MakeDir`.
#[tracing::instrument(skip_all)]
pub async fn make_dir(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Unary(req): Unary<PathRequest>,
) -> Response {
    reply(
        with_user(&state, &headers, move |u, n, w| {
            ops::make_dir(&paths::resolve(&req.path, u, w), n)
                .map(|entry| serde_json::json!({ "entry": entry }))
        })
        .await,
    )
}

/// `Move`.
#[tracing::instrument(skip_all)]
pub async fn move_(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Unary(req): Unary<MoveRequest>,
) -> Response {
    reply(
        with_user(&state, &headers, move |u, n, w| {
            let (src, dst) = (
                paths::resolve(&req.source, u, w),
                paths::resolve(&req.destination, u, w),
            );
            ops::rename(&src, &dst, n).map(|entry| serde_json::json!({ "entry": entry }))
        })
        .await,
    )
}

/// `ListDir`.
#[tracing::instrument(skip_all)]
pub async fn list_dir(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Unary(req): Unary<ListDirRequest>,
) -> Response {
    reply(
        with_user(&state, &headers, move |u, n, w| {
            ops::list_dir(&paths::resolve(&req.path, u, w), req.depth, n)
                .map(|entries| serde_json::json!({ "entries": entries }))
        })
        .await,
    )
}

/// `Remove`.
#[tracing::instrument(skip_all)]
pub async fn remove(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Unary(req): Unary<PathRequest>,
) -> Response {
    reply(
        with_user(&state, &headers, move |u, _, w| {
            ops::remove(&paths::resolve(&req.path, u, w)).map(|()| serde_json::json!({}))
        })
        .await,
    )
}
