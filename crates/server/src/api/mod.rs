//! The control-plane router: the E2B v2 REST API plus the legacy routes older SDKs and the
//! CLI still call. It owns the wire: routes, the API key, headers, query strings, JSON
//! bodies, and the one mapping of failures to statuses and E2B error bodies ([`ApiError`]).
//! It reaches sandboxes only through [`SandboxBackend`]. Every sandbox request (routing
//! headers or a `<port>-<id>` host) is taken by the edge proxy before it reaches these routes.

pub mod auth;
mod body;
mod error;
mod headers;
mod logs;
pub mod model;
pub mod observability;
mod query;
mod sandboxes;
pub mod sdk_builds;
pub mod snapshots;
pub mod templates;
pub mod validate;

pub use error::ApiError;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post, put};

use crate::manager::SandboxBackend;
use crate::state::AppState;

/// Builds the API router (without the proxy) over any backend.
pub fn router<B: SandboxBackend>() -> Router<AppState<B>> {
    Router::new()
        .route("/health", get(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/v2/sandboxes",
            post(sandboxes::create::<B>).get(sandboxes::list::<B>),
        )
        .route(
            "/sandboxes",
            post(sandboxes::create::<B>).get(sandboxes::list_legacy::<B>),
        )
        .route(
            "/sandboxes/{id}",
            get(sandboxes::get::<B>).delete(sandboxes::kill::<B>),
        )
        .route("/sandboxes/{id}/timeout", post(sandboxes::set_timeout::<B>))
        .route(
            "/sandboxes/{id}/network",
            put(sandboxes::update_network::<B>),
        )
        .route("/v2/sandboxes/{id}/connect", post(sandboxes::connect::<B>))
        .route("/sandboxes/{id}/connect", post(sandboxes::connect::<B>))
        .route("/sandboxes/{id}/resume", post(sandboxes::resume::<B>))
        .route("/sandboxes/{id}/pause", post(sandboxes::pause::<B>))
        .route("/sandboxes/{id}/refreshes", post(sandboxes::refresh::<B>))
        .route("/sandboxes/{id}/metrics", get(sandboxes::metrics::<B>))
        .route("/sandboxes/metrics", get(sandboxes::metrics_of::<B>))
        .route("/sandboxes/{id}/logs", get(logs::logs_v1::<B>))
        .route("/v2/sandboxes/{id}/logs", get(logs::logs_v2::<B>))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::BadRequest("method not allowed on this endpoint".into())
        })
}
