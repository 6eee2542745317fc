//! Sandbox endpoints of the control plane (spec section 2.3 and the legacy ones of 2.6).
//! Each handler parses, calls the backend once, and renders; every failure is an
//! [`ApiError`].

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::auth::Team;
use super::body::{JsonBody, SandboxId};
use super::model::{
    ConnectRequest, ListedSandbox, NewSandbox, RefreshRequest, SandboxCreated, SandboxDetail,
    SandboxMetric, SandboxNetworkConfig, SandboxesMetrics, TimeoutRequest,
};
use super::{headers, query};
use crate::manager::{
    Invalid, MAX_SANDBOXES_PER_REQUEST, ManagerError, MetricsWindow, SandboxBackend,
};
use crate::state::AppState;

/// `POST /v2/sandboxes` (and legacy `POST /sandboxes`): 201 with the sandbox.
pub async fn create<B: SandboxBackend>(
    State(st): State<AppState<B>>,
    Team(team): Team,
    headers: HeaderMap,
    JsonBody(req): JsonBody<NewSandbox>,
) -> Result<Response, ApiError> {
    if req.template_id.is_empty() {
        return Err(ApiError::BadRequest("templateID is required".into()));
    }
    let idempotency_key = headers::idempotency_key(&headers)?;
    let rec = st
        .manager
        .create(&team, req.into_request(idempotency_key))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SandboxCreated::new(&rec, &st.domain)),
    )
        .into_response())
}

/// `GET /sandboxes/{id}`.
pub async fn get<B: SandboxBackend>(
    State(st): State<AppState<B>>,
    Team(team): Team,
    SandboxId(id): SandboxId,
) -> Result<Json<SandboxDetail>, ApiError> {
    let rec = st.manager.get(&team, &id).await?;
    let network = st.manager.network(&team, &id).await?;
    Ok(Json(SandboxDetail::new(&rec, &st.domain, network)))
}

/// `PUT /sandboxes/{id}/network`: replaces every egress rule atomically; 204.
pub async fn update_network<B: SandboxBackend>(
    State(st): State<AppState<B>>,
    Team(team): Team,
    SandboxId(id): SandboxId,
    JsonBody(req): JsonBody<SandboxNetworkConfig>,
) -> Result<StatusCode, ApiError> {
    st.manager
        .update_network(&team, &id, req.into_request(None))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /sandboxes/{id}`: 204, or 404 (the SDK's `kill()` then returns False).
pub async fn kill<B: SandboxBackend>(
    State(st): State<AppState<B>>,
    Team(team): Team,
    SandboxId(id): SandboxId,
) -> Result<StatusCode, ApiError> {
    st.manager.kill(&team, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /sandboxes/{id}/timeout`: 204.
pub async fn set_timeout<B: SandboxBackend>(
    State(st): State<AppState<B>>,
    Team(team): Team,
    SandboxId(id): SandboxId,
    JsonBody(req): JsonBody<TimeoutRequest>,
) -> Result<StatusCode, ApiError> {
    st.manager.set_timeout(&team, &id, req.timeout).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v2/sandboxes/{id}/connect` and legacy `/sandboxes/{id}/connect`: 200 when it was
/// running, 201 when it was resumed.
pub async fn connect<B: SandboxBackend>(
    State(st): State<AppState<B>>,
    Team(team): Team,
    SandboxId(id): SandboxId,
    JsonBody(req): JsonBody<ConnectRequest>,
) -> Result<Response, ApiError> {
    let c = st.manager.connect(&team, &id, req.timeout).await?;
    let status = if c.resumed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(SandboxCreated::new(&c.record, &st.domain))).into_response())
}

/// Legacy `POST /sandboxes/{id}/resume`: 201, or 409 when it is running.
pub async fn resume<B: SandboxBackend>(
    State(st): State<AppState<B>>,
    Team(team): Team,
    SandboxId(id): SandboxId,
    JsonBody(req): JsonBody<ConnectRequest>,
) -> Result<Response, ApiError> {
    let rec = st.manager.resume(&team, &id, req.timeout).await?;
    Ok((
        StatusCode::CREATED,
        Json(SandboxCreated::new(&rec, &st.domain)),
    )
        .into_response())
}

/// `POST /sandboxes/{id}/pause` with an optional `{"memory": bool}` (SDK 2.63's
/// `pause(mode=...)`; older SDKs send no body): 204, or 409 when already paused.
/// `memory: false` is E2B's filesystem-only pause.
pub async fn pause<B: SandboxBackend>(
    State(st): State<AppState<B>>,
    Team(team): Team,
    SandboxId(id): SandboxId,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let memory = if body.iter().all(u8::is_ascii_whitespace) {
        true
    } else {
        let req: PauseRequest = serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid pause request: {e}")))?;
        req.memory.unwrap_or(true)
    };
    st.manager.pause(&team, &id, memory).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of a pause.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PauseRequest {
    /// Keep memory (the default) or only the filesystem.
    #[serde(default)]
    memory: Option<bool>,
    /// Accepted and ignored: the pause is always refused rather than made unhealthy.
    #[serde(default)]
    #[allow(dead_code)]
    require_healthy_guest: Option<bool>,
}

/// Legacy `POST /sandboxes/{id}/refreshes`: extends the timeout by `duration` seconds
/// (0..=3600, default 60).
pub async fn refresh<B: SandboxBackend>(
    State(st): State<AppState<B>>,
    Team(team): Team,
    SandboxId(id): SandboxId,
    JsonBody(req): JsonBody<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    let secs = req.duration.unwrap_or(60);
    if !(0..=3600).contains(&secs) {
        return Err(ApiError::BadRequest(
            "duration must be between 0 and 3600".into(),
        ));
    }
    st.manager.set_timeout(&team, &id, secs).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v2/sandboxes`: the team's sandboxes, filtered; `X-Next-Token` when there is more.
pub async fn list<B: SandboxBackend>(
    State(st): State<AppState<B>>,
    Team(team): Team,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let page = st.manager.list(&team, &query::list(&q)?).await?;
    let body: Vec<ListedSandbox> = page.items.iter().map(ListedSandbox::new).collect();
    let mut resp = Json(body).into_response();
    if let Some(token) = page.next_token
        && let Ok(v) = HeaderValue::from_str(&token)
    {
        resp.headers_mut().insert("x-next-token", v);
    }
    Ok(resp)
}

/// Legacy `GET /sandboxes`: running sandboxes only.
pub async fn list_legacy<B: SandboxBackend>(
    State(st): State<AppState<B>>,
    Team(team): Team,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Vec<ListedSandbox>>, ApiError> {
    let page = st.manager.list(&team, &query::legacy_list(&q)?).await?;
    Ok(Json(page.items.iter().map(ListedSandbox::new).collect()))
}

/// `GET /sandboxes/{id}/metrics?start=&end=`: the samples of the window (unix seconds,
/// either open), oldest first, ending with one of now while the sandbox runs.
pub async fn metrics<B: SandboxBackend>(
    State(st): State<AppState<B>>,
    Team(team): Team,
    SandboxId(id): SandboxId,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Vec<SandboxMetric>>, ApiError> {
    let window = MetricsWindow {
        start: unix_seconds(&q, "start")?,
        end: unix_seconds(&q, "end")?,
    };
    let samples = st.manager.metrics(&team, &id, window).await?;
    Ok(Json(samples.iter().map(SandboxMetric::from).collect()))
}

/// `GET /sandboxes/metrics?sandbox_ids=a,b`: the latest sample of each running sandbox
/// named that the caller owns.
pub async fn metrics_of<B: SandboxBackend>(
    State(st): State<AppState<B>>,
    Team(team): Team,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<SandboxesMetrics>, ApiError> {
    let ids: Vec<String> = q
        .get("sandbox_ids")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() || ids.len() > MAX_SANDBOXES_PER_REQUEST {
        return Err(ManagerError::from(Invalid::SandboxIdCount {
            given: ids.len(),
            max: MAX_SANDBOXES_PER_REQUEST,
        })
        .into());
    }
    let samples = st.manager.metrics_of(&team, &ids).await?;
    Ok(Json(SandboxesMetrics {
        sandboxes: samples
            .iter()
            .map(|(id, m)| (id.clone(), SandboxMetric::from(m)))
            .collect(),
    }))
}

/// Above this a time is in milliseconds (the year 5138 in seconds): SDK 2.2 sends `start`
/// and `end` in milliseconds, later releases in seconds.
const MILLIS_FROM: i64 = 100_000_000_000;

/// An optional query parameter holding a unix time, in seconds (or milliseconds, see
/// [`MILLIS_FROM`]).
fn unix_seconds(q: &HashMap<String, String>, key: &str) -> Result<Option<i64>, ApiError> {
    match q.get(key) {
        None => Ok(None),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(t) if t.abs() >= MILLIS_FROM => Ok(Some(t / 1000)),
            Ok(t) => Ok(Some(t)),
            Err(_) => Err(ApiError::BadRequest(format!(
                "{key} must be a unix time in seconds, not {v:?}"
            ))),
        },
    }
}
