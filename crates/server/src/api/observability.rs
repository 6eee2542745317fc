//! `GET /metrics` for Prometheus ([`crate::prometheus`] holds the families). It takes a key of
//! this server, as `X-API-Key` or as `Authorization: Bearer` (what Prometheus's
//! `authorization` scrape setting sends): the figures name templates and load, which an
//! unauthenticated client has no business reading.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::manager::Manager;
use crate::state::AppState;

/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn key_of(headers: &HeaderMap) -> Option<String> {
    let from = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .map(str::to_string)
    };
    from(header::HeaderName::from_static("x-api-key"))
        .filter(|k| !k.is_empty())
        .or_else(|| {
            from(header::AUTHORIZATION)
                .and_then(|v| v.strip_prefix("Bearer ").map(|k| k.trim().to_string()))
                .filter(|k| !k.is_empty())
        })
}

/// `GET /metrics`: 200 with the OpenMetrics text; 401 without a valid key.
pub async fn metrics(
    State(st): State<AppState<Manager>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = key_of(&headers).ok_or(ApiError::Unauthorized(
        "missing X-API-KEY or Authorization: Bearer header",
    ))?;
    let auth = st.auth.clone();
    let team = tokio::task::spawn_blocking(move || auth.team_for(&key))
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?
        .map_err(|_| ApiError::Unavailable("API keys cannot be checked right now".into()))?;
    if team.is_none() {
        return Err(ApiError::Unauthorized("invalid API key"));
    }
    let manager = st.manager.clone();
    let text =
        super::templates::blocking(move || crate::prometheus::METRICS.render(&manager)).await?;
    let mut resp = text.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
    Ok(resp)
}

/// The route (only for a real manager).
pub fn router() -> axum::Router<AppState<Manager>> {
    axum::Router::new().route("/metrics", axum::routing::get(metrics))
}
