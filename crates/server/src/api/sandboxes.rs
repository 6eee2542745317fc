//! Sandbox endpoints of the control plane (spec section 2.3 and the legacy ones of 2.6).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::Team;
use super::body::{JsonBody, SandboxId};
use super::model::{
    CLIENT_ID, ConnectRequest, ListedSandbox, NewSandbox, RefreshRequest, SandboxCreated,
    SandboxDetail, SandboxMetric, SandboxNetworkConfig, SandboxNetworkInfo, TimeoutRequest,
};
use crate::error::ApiError;
use crate::manager::{CreateRequest, Entry, ListQuery, NetworkRequest, SandboxStatus};
use crate::state::AppState;

/// The envd version every sandbox runs.
const ENVD_VERSION: &str = bulkhead_envd::ENVD_VERSION;

fn rfc3339(t: crate::clock::Timestamp) -> String {
    crate::clock::rfc3339(t)
}

fn created(e: &Entry, domain: &str) -> SandboxCreated {
    SandboxCreated {
        template_id: e.template_id.clone(),
        sandbox_id: e.id.clone(),
        client_id: CLIENT_ID,
        envd_version: ENVD_VERSION,
        envd_access_token: e.envd_token.clone(),
        traffic_access_token: None,
        // The SDK builds `get_host(port)` = `<port>-<id>.<domain>` from this.
        domain: Some(domain.to_string()),
        alias: e.alias.clone(),
    }
}

fn listed(e: &Entry) -> ListedSandbox {
    ListedSandbox {
        template_id: e.template_id.clone(),
        sandbox_id: e.id.clone(),
        client_id: CLIENT_ID,
        alias: e.alias.clone(),
        started_at: rfc3339(e.started_at),
        end_at: rfc3339(e.end_at()),
        cpu_count: e.cpu_count,
        memory_mb: e.memory_mb,
        disk_size_mb: e.disk_mb,
        state: e.status().as_str(),
        envd_version: ENVD_VERSION,
        metadata: e.metadata.clone(),
    }
}

/// The team's sandbox `id`, or the 404 every endpoint gives for a missing or foreign one.
fn owned(st: &AppState, team: &str, id: &str) -> Result<Arc<Entry>, ApiError> {
    st.manager
        .get(team, id)
        .ok_or_else(|| ApiError::NotFound(format!("sandbox {id} not found")))
}

/// `POST /v2/sandboxes` (and legacy `POST /sandboxes`): 201 with the sandbox.
pub async fn create(
    State(st): State<AppState>,
    Team(team): Team,
    headers: HeaderMap,
    JsonBody(req): JsonBody<NewSandbox>,
) -> Result<Response, ApiError> {
    if req.template_id.is_empty() {
        return Err(ApiError::BadRequest("templateID is required".into()));
    }
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_string))
        .transpose()
        .map_err(|_| ApiError::BadRequest("invalid Idempotency-Key".into()))?;
    let entry = st
        .manager
        .create(
            &team,
            CreateRequest {
                template: req.template_id,
                timeout: req.timeout,
                metadata: req.metadata.unwrap_or_default(),
                env_vars: req.env_vars.unwrap_or_default(),
                auto_pause: req.auto_pause.unwrap_or(false),
                idempotency_key,
                network: network_request(req.allow_internet_access, req.network),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(created(&entry, &st.domain))).into_response())
}

/// `GET /sandboxes/{id}`.
pub async fn get(
    State(st): State<AppState>,
    Team(team): Team,
    SandboxId(id): SandboxId,
) -> Result<Json<SandboxDetail>, ApiError> {
    let e = owned(&st, &team, &id)?;
    let net = st.manager.network_of(&e.id);
    Ok(Json(SandboxDetail {
        listed: listed(&e),
        envd_access_token: e.envd_token.clone(),
        allow_internet_access: Some(net.as_ref().is_some_and(|a| a.policy.internet)),
        domain: Some(st.domain.clone()),
        network: net.map(|a| SandboxNetworkInfo {
            allow_out: a
                .policy
                .allow_out
                .iter()
                .map(|c| c.to_string())
                .chain(a.policy.allow_domains.iter().map(|d| d.to_string()))
                .collect(),
            deny_out: a.policy.deny_out.iter().map(|c| c.to_string()).collect(),
            allow_public_traffic: true,
        }),
    }))
}

fn network_request(
    internet: Option<bool>,
    network: Option<SandboxNetworkConfig>,
) -> NetworkRequest {
    let network = network.unwrap_or_default();
    NetworkRequest {
        internet: internet.or(network.allow_internet_access),
        allow_out: network.allow_out.unwrap_or_default(),
        deny_out: network.deny_out.unwrap_or_default(),
    }
}

/// `PUT /sandboxes/{id}/network`: replaces every egress rule atomically; 204.
pub async fn update_network(
    State(st): State<AppState>,
    Team(team): Team,
    SandboxId(id): SandboxId,
    JsonBody(req): JsonBody<SandboxNetworkConfig>,
) -> Result<StatusCode, ApiError> {
    st.manager
        .update_network(&team, &id, network_request(None, Some(req)))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /sandboxes/{id}`: 204, or 404 (the SDK's `kill()` then returns False).
pub async fn kill(
    State(st): State<AppState>,
    Team(team): Team,
    SandboxId(id): SandboxId,
) -> Result<StatusCode, ApiError> {
    if st.manager.kill(&team, &id).await {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("sandbox {id} not found")))
    }
}

/// `POST /sandboxes/{id}/timeout`.
pub async fn set_timeout(
    State(st): State<AppState>,
    Team(team): Team,
    SandboxId(id): SandboxId,
    JsonBody(req): JsonBody<TimeoutRequest>,
) -> Result<StatusCode, ApiError> {
    st.manager.set_timeout(&team, &id, req.timeout).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v2/sandboxes/{id}/connect` and legacy `/sandboxes/{id}/connect`: 200 when it was
/// running, 201 when it was resumed.
pub async fn connect(
    State(st): State<AppState>,
    Team(team): Team,
    SandboxId(id): SandboxId,
    JsonBody(req): JsonBody<ConnectRequest>,
) -> Result<Response, ApiError> {
    let (entry, resumed) = st.manager.connect(&team, &id, req.timeout).await?;
    let status = if resumed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(created(&entry, &st.domain))).into_response())
}

/// Legacy `POST /sandboxes/{id}/resume`: 201, or 409 when it is running.
pub async fn resume(
    State(st): State<AppState>,
    Team(team): Team,
    SandboxId(id): SandboxId,
    JsonBody(req): JsonBody<ConnectRequest>,
) -> Result<Response, ApiError> {
    let entry = owned(&st, &team, &id)?;
    if entry.status() == SandboxStatus::Running {
        return Err(ApiError::Conflict(format!(
            "sandbox {id} is already running"
        )));
    }
    let (entry, _) = st.manager.connect(&team, &id, req.timeout).await?;
    Ok((StatusCode::CREATED, Json(created(&entry, &st.domain))).into_response())
}

/// `POST /sandboxes/{id}/pause`: 204, or 409 when already paused.
pub async fn pause(
    State(st): State<AppState>,
    Team(team): Team,
    SandboxId(id): SandboxId,
) -> Result<StatusCode, ApiError> {
    if st.manager.pause(&team, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::Conflict(format!(
            "sandbox {id} is already paused"
        )))
    }
}

/// Legacy `POST /sandboxes/{id}/refreshes`: extends the timeout by `duration` seconds.
pub async fn refresh(
    State(st): State<AppState>,
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
pub async fn list(
    State(st): State<AppState>,
    Team(team): Team,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let query = ListQuery {
        metadata: q
            .get("metadata")
            .map(|m| crate::manager::parse_metadata_filter(m))
            .transpose()?
            .unwrap_or_default(),
        states: q
            .get("state")
            .map(|s| crate::manager::parse_states(s))
            .transpose()?
            .unwrap_or_default(),
        template: q.get("template").cloned(),
        started_after: q
            .get("startedAfter")
            .map(|s| crate::manager::parse_time(s))
            .transpose()?,
        ascending: match q.get("order").map(String::as_str) {
            None | Some("desc") => false,
            Some("asc") => true,
            Some(o) => {
                return Err(ApiError::BadRequest(format!(
                    "invalid order {o:?}: use asc or desc"
                )));
            }
        },
        limit: match q.get("limit") {
            None => 100,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "invalid limit {l:?}: use 1 to 100"
                    )));
                }
            },
        },
        next_token: q.get("nextToken").filter(|t| !t.is_empty()).cloned(),
    };
    let page = st.manager.list(&team, &query)?;
    let body: Vec<ListedSandbox> = page.items.iter().map(|e| listed(e)).collect();
    let mut resp = Json(body).into_response();
    if let Some(token) = page.next_token
        && let Ok(v) = HeaderValue::from_str(&token)
    {
        resp.headers_mut().insert("x-next-token", v);
    }
    Ok(resp)
}

/// Legacy `GET /sandboxes`: running sandboxes only.
pub async fn list_legacy(
    State(st): State<AppState>,
    Team(team): Team,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Vec<ListedSandbox>>, ApiError> {
    let query = ListQuery {
        metadata: q
            .get("metadata")
            .map(|m| crate::manager::parse_metadata_filter(m))
            .transpose()?
            .unwrap_or_default(),
        states: vec![SandboxStatus::Running],
        limit: 100,
        ..Default::default()
    };
    Ok(Json(
        st.manager
            .list(&team, &query)?
            .items
            .iter()
            .map(|e| listed(e))
            .collect(),
    ))
}

/// `GET /sandboxes/{id}/metrics`: one sample from the sandbox's cgroup.
pub async fn metrics(
    State(st): State<AppState>,
    Team(team): Team,
    SandboxId(id): SandboxId,
) -> Result<Json<Vec<SandboxMetric>>, ApiError> {
    let e: Arc<Entry> = owned(&st, &team, &id)?;
    let sb = e.sandbox.clone();
    let stats = tokio::task::spawn_blocking(move || sb.stats())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let now = std::time::Instant::now();
    let cpu_used_pct = {
        let mut m = e.lock();
        let pct = match m.last_cpu {
            Some((t, ns)) if now > t => {
                let wall = now.duration_since(t).as_nanos() as f64 * f64::from(e.cpu_count.max(1));
                (stats.cpu_ns.saturating_sub(ns) as f64 / wall * 100.0).clamp(0.0, 100.0)
            }
            _ => 0.0,
        };
        m.last_cpu = Some((now, stats.cpu_ns));
        pct
    };
    let t = crate::clock::now();
    Ok(Json(vec![SandboxMetric {
        timestamp: rfc3339(t),
        timestamp_unix: t.timestamp(),
        cpu_count: e.cpu_count,
        cpu_used_pct,
        mem_used: stats.memory_bytes,
        mem_total: e.memory_mb << 20,
        mem_cache: 0,
        disk_used: 0,
        disk_total: e.disk_mb << 20,
    }]))
}
