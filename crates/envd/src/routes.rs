//! Plain HTTP routes besides `/files`: `/health`, `/envs` and the orchestrator's `/init`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::auth::{TokenCheck, UNAUTHORIZED, check_token, ct_eq, unauthorized};
use crate::config::AccessToken;
use crate::state::SharedState;

/// `GET /health`: 204, `Cache-Control: no-store`, never authenticated.
pub async fn health() -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `GET /envs`: the sandbox-wide environment variables.
pub async fn envs(State(state): State<SharedState>) -> Json<BTreeMap<String, String>> {
    Json(state.settings().env_vars)
}

/// `POST /init` body (fields the reference envd accepts; unknown ones are ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct InitRequest {
    /// Replaces the sandbox-wide environment variables when present.
    pub env_vars: Option<BTreeMap<String, String>>,
    /// Sets the access token.
    pub access_token: Option<String>,
    /// Sets the default user.
    pub default_user: Option<String>,
    /// Sets the default working directory.
    pub default_workdir: Option<String>,
}

/// `POST /init`: set env vars, token, default user and workdir. When a token is already set,
/// the request must carry it in `X-Access-Token` or repeat it in `accessToken`. 204 with
/// `X-Envd-Version`.
#[tracing::instrument(skip_all)]
pub async fn init(State(state): State<SharedState>, headers: HeaderMap, body: Bytes) -> Response {
    let req: InitRequest = if body.is_empty() {
        InitRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return bad_request(&format!("invalid init body: {e}")),
        }
    };
    let current = state.access_token();
    let header_ok = check_token(current.as_ref(), &headers) == TokenCheck::Valid;
    let body_ok = match (&current, &req.access_token) {
        (Some(cur), Some(given)) => ct_eq(cur.expose().as_bytes(), given.trim().as_bytes()),
        _ => false,
    };
    if current.is_some() && !header_ok && !body_ok {
        return unauthorized(UNAUTHORIZED);
    }
    if let Some(dir) = &req.default_workdir
        && !dir.is_empty()
        && !dir.starts_with('/')
    {
        return bad_request("defaultWorkdir must be an absolute path");
    }
    state.update_settings(|s| {
        if let Some(env) = req.env_vars {
            s.env_vars = env;
        }
        if let Some(token) = req.access_token.filter(|t| !t.trim().is_empty()) {
            s.access_token = Some(AccessToken::new(token));
        }
        if let Some(user) = req.default_user.filter(|u| !u.is_empty()) {
            s.default_user = user;
        }
        if let Some(dir) = req.default_workdir.filter(|d| !d.is_empty()) {
            s.default_workdir = Some(PathBuf::from(dir));
        }
    });
    tracing::info!("sandbox settings initialised");
    let mut res = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&state.config.version) {
        res.headers_mut().insert("x-envd-version", v);
    }
    res
}

fn bad_request(message: &str) -> Response {
    let body = serde_json::json!({ "code": 400, "message": message }).to_string();
    let mut res = (StatusCode::BAD_REQUEST, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    res
}
