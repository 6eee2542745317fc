//! The control-plane router: the E2B v2 REST API plus the legacy routes older SDKs and the
//! CLI still call. Every sandbox request (routing headers or a `<port>-<id>` host) is taken by
//! the edge proxy before it reaches these routes.

pub mod auth;
mod body;
pub mod model;
mod sandboxes;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post, put};

use crate::error::ApiError;
use crate::state::AppState;

/// Builds the API router (without the proxy).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/v2/sandboxes",
            post(sandboxes::create).get(sandboxes::list),
        )
        .route(
            "/sandboxes",
            post(sandboxes::create).get(sandboxes::list_legacy),
        )
        .route(
            "/sandboxes/{id}",
            get(sandboxes::get).delete(sandboxes::kill),
        )
        .route("/sandboxes/{id}/timeout", post(sandboxes::set_timeout))
        .route("/sandboxes/{id}/network", put(sandboxes::update_network))
        .route("/v2/sandboxes/{id}/connect", post(sandboxes::connect))
        .route("/sandboxes/{id}/connect", post(sandboxes::connect))
        .route("/sandboxes/{id}/resume", post(sandboxes::resume))
        .route("/sandboxes/{id}/pause", post(sandboxes::pause))
        .route("/sandboxes/{id}/refreshes", post(sandboxes::refresh))
        .route("/sandboxes/{id}/metrics", get(sandboxes::metrics))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::BadRequest("method not allowed on this endpoint".into())
        })
}
