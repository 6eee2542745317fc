//! Snapshots and fork (spec 2.3): `POST /sandboxes/{id}/snapshots`, `GET /snapshots`,
//! `POST /sandboxes/{id}/fork`; `DELETE /templates/{id}` removes a snapshot as it removes a
//! template. The work is [`Templates::snapshot`](crate::templates::Templates).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::auth::Team;
use super::body::{JsonBody, SandboxId};
use super::model::SandboxCreated;
use super::templates::blocking;
use crate::manager::{CreateRequest, Manager, ManagerError};
use crate::snapshots::SnapshotError;
use crate::state::AppState;
use crate::templates::{StoredTemplate, Templates};

/// Forks one request may ask for (E2B's bound).
pub const MAX_FORKS: i64 = 20;

/// Snapshots one list page holds at most.
const MAX_LIST: usize = 100;

/// `POST /sandboxes/{id}/snapshots` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRequest {
    /// The name it answers to, besides its id.
    pub name: Option<String>,
    /// A memory snapshot (refused: files only).
    pub memory: Option<bool>,
}

/// `POST /sandboxes/{id}/fork` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForkRequest {
    /// Seconds until each fork times out.
    pub timeout: Option<i64>,
    /// How many (1 to 20, default 1).
    pub count: Option<i64>,
}

impl From<SnapshotError> for ApiError {
    fn from(e: SnapshotError) -> Self {
        match e {
            SnapshotError::Manager(m) => m.into(),
            SnapshotError::Invalid(_) | SnapshotError::Memory => {
                ApiError::BadRequest(e.to_string())
            }
            SnapshotError::NameTaken(_) | SnapshotError::Paused(_) => {
                ApiError::Conflict(e.to_string())
            }
            SnapshotError::Template(t) => t.into(),
            SnapshotError::Capture(_) => ApiError::Internal(Box::new(e)),
        }
    }
}

fn templates(st: &AppState<Manager>) -> Result<Arc<Templates>, ApiError> {
    st.templates
        .clone()
        .ok_or_else(|| ApiError::Unavailable("this server keeps no snapshots".into()))
}

fn info(t: &StoredTemplate) -> Value {
    let names = t
        .snapshot
        .as_ref()
        .map(|s| s.names.clone())
        .unwrap_or_default();
    json!({"snapshotID": t.id, "names": names})
}

/// Takes a snapshot on a blocking thread.
async fn take(
    t: Arc<Templates>,
    team: &bulkhead_store::TeamId,
    id: &str,
    name: Option<String>,
    memory: bool,
    for_fork: bool,
) -> Result<StoredTemplate, ApiError> {
    let (team, id) = (team.clone(), id.to_string());
    blocking(move || t.snapshot(&team, &id, name.as_deref(), memory, for_fork))
        .await?
        .map_err(ApiError::from)
}

/// `POST /sandboxes/{id}/snapshots`: 201 `{"snapshotID", "names"}`.
pub async fn create(
    State(st): State<AppState<Manager>>,
    Team(team): Team,
    SandboxId(id): SandboxId,
    JsonBody(req): JsonBody<SnapshotRequest>,
) -> Result<Response, ApiError> {
    let t = templates(&st)?;
    let snap = take(t, &team, &id, req.name, req.memory.unwrap_or(false), false).await?;
    Ok((StatusCode::CREATED, Json(info(&snap))).into_response())
}

/// `GET /snapshots?sandboxID=&name=&limit=&nextToken=`: the team's snapshots, oldest first;
/// `X-Next-Token` (the last id of the page) when more follow.
pub async fn list(
    State(st): State<AppState<Manager>>,
    Team(team): Team,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let t = templates(&st)?;
    let limit = match q.get("limit") {
        None => MAX_LIST,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIST).contains(&n) => n,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "limit must be 1 to {MAX_LIST}, not {v:?}"
                )));
            }
        },
    };
    // The records are files: read them off the async threads.
    let (sandbox, name) = (q.get("sandboxID").cloned(), q.get("name").cloned());
    let all = blocking(move || t.snapshots(&team, sandbox.as_deref(), name.as_deref())).await?;
    let start = match q.get("nextToken") {
        None => 0,
        Some(tok) => match all.iter().position(|s| &s.id == tok) {
            Some(i) => i + 1,
            None => return Err(ApiError::BadRequest("invalid nextToken".into())),
        },
    };
    let page: Vec<&StoredTemplate> = all.iter().skip(start).take(limit).collect();
    let more = start + page.len() < all.len();
    let mut resp = Json(page.iter().map(|s| info(s)).collect::<Vec<_>>()).into_response();
    if more
        && let Some(last) = page.last()
        && let Ok(v) = HeaderValue::from_str(&last.id)
    {
        resp.headers_mut().insert("x-next-token", v);
    }
    Ok(resp)
}

/// `POST /sandboxes/{id}/fork`: a filesystem snapshot of the sandbox, then `count` sandboxes
/// created from it at once; 201 with one `{"sandbox"}` or `{"error"}` per fork. The snapshot
/// stays (listed, without a name) until deleted.
pub async fn fork(
    State(st): State<AppState<Manager>>,
    Team(team): Team,
    SandboxId(id): SandboxId,
    JsonBody(req): JsonBody<ForkRequest>,
) -> Result<Response, ApiError> {
    let count = req.count.unwrap_or(1);
    if !(1..=MAX_FORKS).contains(&count) {
        return Err(ApiError::BadRequest(format!(
            "count must be 1 to {MAX_FORKS}, not {count}"
        )));
    }
    if let Some(t) = req.timeout
        && t <= 0
    {
        return Err(ApiError::BadRequest(
            "Timeout must be greater than 0".into(),
        ));
    }
    let t = templates(&st)?;
    let source = st.manager.entry_of(&team, &id).map_err(ApiError::from)?;
    let metadata = source.record().metadata;
    let snap = take(t, &team, &id, None, false, true).await?;
    let creates = (0..count).map(|_| {
        let req = CreateRequest {
            template: snap.id.clone(),
            timeout: req.timeout,
            metadata: metadata.clone(),
            env_vars: Default::default(),
            auto_pause: false,
            auto_pause_memory: true,
            network: Default::default(),
            idempotency_key: None,
        };
        let (m, team) = (Arc::clone(&st.manager), team.clone());
        async move { m.create(&team, req).await }
    });
    let results: Vec<Result<_, ManagerError>> = futures_util::future::join_all(creates).await;
    let items: Vec<Value> = results
        .into_iter()
        .map(|r| match r {
            Ok(rec) => json!({"sandbox": SandboxCreated::new(&rec, &st.domain)}),
            Err(e) => {
                let e = ApiError::from(e);
                let status = e.status().as_u16();
                json!({"error": {"code": status, "message": e.to_string()}})
            }
        })
        .collect();
    Ok((StatusCode::CREATED, Json(items)).into_response())
}

/// The snapshot routes (only for a real manager).
pub fn router() -> axum::Router<AppState<Manager>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/sandboxes/{id}/snapshots", post(create))
        .route("/sandboxes/{id}/fork", post(fork))
        .route("/snapshots", get(list))
}
