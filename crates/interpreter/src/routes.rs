//! The HTTP routes of port 49999 (spec §4.1): `/execute`, `/contexts`, `/health`, and the
//! server's own `/ready`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::normalise_language;
use crate::context::{Context, ExecRequest, Shared};
use crate::contexts::{Contexts, CreateError};

/// Lines buffered per stream before the kernel's output waits for the client.
const STREAM_BUFFER: usize = 64;

/// State of the pre-warmed contexts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Still starting.
    Starting,
    /// Every pre-warmed kernel answered and ran its first cell.
    Ready,
    /// A pre-warmed kernel could not start.
    Failed(String),
}

/// What the handlers share.
pub(crate) struct App {
    pub shared: Arc<Shared>,
    pub contexts: Contexts,
    pub ready: watch::Receiver<Readiness>,
}

type AppState = State<Arc<App>>;

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, body.into()).into_response()
}

/// `/execute` body. Python sends all four keys (null when unset); JS omits unset ones.
#[derive(Debug, Deserialize)]
struct ExecuteBody {
    code: String,
    #[serde(default)]
    context_id: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    env_vars: Option<BTreeMap<String, String>>,
    /// Bulkhead's addition: the execution's deadline in seconds (0 or absent: none).
    #[serde(default)]
    timeout: Option<f64>,
}

/// `POST /execute`: 200 with an NDJSON stream; 400/404 as plain text.
#[tracing::instrument(skip_all)]
pub(crate) async fn execute(State(app): AppState, headers: HeaderMap, body: Bytes) -> Response {
    let req: ExecuteBody = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("invalid request body: {e}"),
            );
        }
    };
    let ctx = match (&req.context_id, &req.language) {
        (Some(_), Some(_)) => {
            return text(
                StatusCode::BAD_REQUEST,
                "Only one of context_id or language can be provided",
            );
        }
        (Some(id), None) => match app.contexts.get(id) {
            Some(c) => c,
            None => return text(StatusCode::NOT_FOUND, format!("Context {id} not found")),
        },
        (None, lang) => match app
            .contexts
            .default_for(&normalise_language(lang.as_deref()))
        {
            Ok(c) => c,
            Err(e) => return create_error(e),
        },
    };
    let env_vars = req.env_vars.unwrap_or_default();
    if let Err(e) = crate::env::validate(&env_vars, &ctx.language) {
        return text(StatusCode::BAD_REQUEST, e.to_string());
    }
    let config = &app.shared.config;
    let asked = req
        .timeout
        .filter(|t| t.is_finite() && *t > 0.0)
        .map(|t| Duration::from_secs_f64(t.min(1e9)));
    let limit = match (asked, config.max_execution) {
        (Some(a), Some(m)) => Some(a.min(m)),
        (a, m) => a.or(m),
    };
    let access_token = headers
        .get("x-access-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let exec = ExecRequest {
        code: req.code,
        env_vars,
        deadline: limit.map(|l| Instant::now() + l),
        access_token,
    };
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    // Spawned in arrival order; the context's fair lock keeps that order.
    tokio::spawn(ctx.execute(exec, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn create_error(e: CreateError) -> Response {
    text(StatusCode::BAD_REQUEST, e.to_string())
}

#[derive(Debug, Serialize)]
struct ContextJson {
    id: String,
    language: String,
    cwd: String,
}

fn context_json(c: &Context) -> ContextJson {
    ContextJson {
        id: c.id.clone(),
        language: c.language.clone(),
        cwd: c.cwd.to_string_lossy().into_owned(),
    }
}

#[derive(Debug, Default, Deserialize)]
struct CreateBody {
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    cwd: Option<String>,
}

/// `POST /contexts`: starts the context's kernel before answering.
#[tracing::instrument(skip_all)]
pub(crate) async fn create_context(State(app): AppState, body: Bytes) -> Response {
    let req: CreateBody = if body.is_empty() {
        CreateBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("invalid request body: {e}"),
                );
            }
        }
    };
    let language = normalise_language(req.language.as_deref());
    let ctx = match app.contexts.create(&language, req.cwd.as_deref()) {
        Ok(c) => c,
        Err(e) => return create_error(e),
    };
    if let Err(e) = ctx.start(None).await {
        app.contexts.remove(&ctx.id);
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("creating the context failed: {e}"),
        );
    }
    Json(context_json(&ctx)).into_response()
}

/// `GET /contexts`.
pub(crate) async fn list_contexts(State(app): AppState) -> Response {
    let list: Vec<ContextJson> = app
        .contexts
        .list()
        .iter()
        .map(|c| context_json(c))
        .collect();
    Json(list).into_response()
}

/// `DELETE /contexts/{id}`.
pub(crate) async fn delete_context(State(app): AppState, Path(id): Path<String>) -> Response {
    if app.contexts.remove(&id) {
        StatusCode::OK.into_response()
    } else {
        text(StatusCode::NOT_FOUND, format!("Context {id} not found"))
    }
}

/// `POST /contexts/{id}/restart`: answers once the fresh kernel runs.
#[tracing::instrument(skip_all)]
pub(crate) async fn restart_context(State(app): AppState, Path(id): Path<String>) -> Response {
    let Some(ctx) = app.contexts.get(&id) else {
        return text(StatusCode::NOT_FOUND, format!("Context {id} not found"));
    };
    match ctx.restart().await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("restarting the context failed: {e}"),
        ),
    }
}

/// `GET /health`: `"OK"` as soon as the server listens.
pub(crate) async fn health() -> Response {
    Json("OK").into_response()
}

/// `GET /ready`: 200 once the pre-warmed kernels run (with each kernel's resident memory),
/// 503 while they start, 500 when one failed.
pub(crate) async fn ready(State(app): AppState) -> Response {
    let state = app.ready.borrow().clone();
    match state {
        Readiness::Ready => {
            let kernels: Vec<_> = app
                .contexts
                .list()
                .iter()
                .map(|c| json!({"id": c.id, "language": c.language, "rss_bytes": c.kernel_rss()}))
                .collect();
            Json(json!({"ready": true, "kernels": kernels})).into_response()
        }
        Readiness::Starting => text(StatusCode::SERVICE_UNAVAILABLE, "starting"),
        Readiness::Failed(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
