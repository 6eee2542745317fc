//! Errors of the control plane, mapped once to a status and the E2B error body
//! `{code, message}`: request parsing fails with these directly, the manager's
//! [`ManagerError`] converts into them here and nowhere else.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::manager::ManagerError;
use crate::report::chain;

/// A failed API request. The message is safe to show to the client; details of internal
/// failures are logged, not sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 401.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 503: not possible right now (retryable).
    #[error("{0}")]
    Unavailable(String),
    /// 500; the cause is logged, the client sees a generic message.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<ManagerError> for ApiError {
    fn from(e: ManagerError) -> Self {
        use ManagerError as M;
        match e {
            M::SandboxNotFound { .. } | M::TemplateNotFound { .. } => {
                ApiError::NotFound(e.to_string())
            }
            M::AlreadyPaused { .. } | M::AlreadyRunning { .. } | M::IdempotencyKeyFailed => {
                ApiError::Conflict(e.to_string())
            }
            M::Invalid(_) | M::InvalidCursor => ApiError::BadRequest(e.to_string()),
            M::NoCapacity(_) => {
                // The client sees why (it is about the host or the template, not a secret).
                let message = chain(&e);
                tracing::warn!(error = %message, "no sandbox could be started");
                ApiError::Unavailable(message)
            }
            M::AttachStorage { .. }
            | M::EnvdSetup(_)
            | M::Freeze { .. }
            | M::Store { .. }
            | M::Task(_) => ApiError::Internal(Box::new(e)),
        }
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %chain(cause.as_ref()), "request failed");
                "internal server error".to_string()
            }
            other => other.to_string(),
        };
        let mut resp = (
            status,
            Json(serde_json::json!({"code": status.as_u16(), "message": message})),
        )
            .into_response();
        // A create that failed on our side must not be replayed blindly by the SDK's retry.
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            resp.headers_mut()
                .insert("should-retry", HeaderValue::from_static("false"));
        }
        resp
    }
}
