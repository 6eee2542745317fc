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
    /// 403: it exists, and belongs to another team (E2B's answer for a taken alias).
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 429: a limit of the server or the team (retryable later).
    #[error("{0}")]
    TooManyRequests(String),
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
            M::Invalid(_) | M::InvalidCursor | M::Policy(_) => ApiError::BadRequest(e.to_string()),
            M::Refused(ref why) => {
                tracing::info!(reason = %why, "create refused by admission control");
                ApiError::TooManyRequests(e.to_string())
            }
            M::NetworkFull(_) => {
                let message = chain(&e);
                tracing::warn!(error = %message, "no sandbox network could be set up");
                ApiError::Unavailable(message)
            }
            M::NoCapacity(ref cause) => {
                // The client sees why (it is about the host or the template, not a secret).
                let message = chain(&e);
                // An image that cannot hold a sandbox fails on every retry: not a capacity issue.
                if cause.kind() == bulkhead_runtime::FailureKind::Image {
                    return ApiError::BadRequest(message);
                }
                tracing::warn!(error = %message, "no sandbox could be started");
                ApiError::Unavailable(message)
            }
            M::AttachStorage { .. }
            | M::EnvdSetup(_)
            | M::Freeze { .. }
            | M::Restart { .. }
            | M::Store { .. }
            | M::Network(_)
            | M::Task(_) => ApiError::Internal(Box::new(e)),
        }
    }
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        crate::prometheus::METRICS.api_error(status.as_u16());
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

#[cfg(test)]
mod tests {
    use bulkhead_runtime::RuntimeError;
    use bulkhead_runtime::cgroup::CgroupError;
    use bulkhead_store::{ConflictKind, StoreError};

    use super::*;
    use crate::manager::{EnvdError, Invalid};

    fn status(e: ManagerError) -> StatusCode {
        ApiError::from(e).into_response().status()
    }

    /// Every manager failure has one status; internal ones are 500.
    #[tokio::test]
    async fn manager_errors_map_to_one_status_each() {
        let id = || "sbx".to_string();
        let io = || std::io::Error::other("boom");
        let cases = [
            (ManagerError::SandboxNotFound { id: id() }, 404),
            (
                ManagerError::TemplateNotFound {
                    template: "t".into(),
                },
                404,
            ),
            (ManagerError::AlreadyPaused { id: id() }, 409),
            (ManagerError::AlreadyRunning { id: id() }, 409),
            (ManagerError::IdempotencyKeyFailed, 409),
            (Invalid::CreateTimeout.into(), 400),
            (Invalid::NegativeTimeout.into(), 400),
            (Invalid::InternetAccess.into(), 400),
            (Invalid::MetricsWindow { start: 2, end: 1 }.into(), 400),
            (crate::manager::Refusal::TeamFull(20).into(), 429),
            (ManagerError::InvalidCursor, 400),
            (
                bulkhead_net::PolicyError::DomainInDeny("example.com".into()).into(),
                400,
            ),
            (
                ManagerError::NetworkFull(bulkhead_net::NetError::PoolExhausted("p".into())),
                503,
            ),
            (
                ManagerError::Network(bulkhead_net::NetError::Unknown(id())),
                500,
            ),
            (
                ManagerError::NoCapacity(RuntimeError::UidsExhausted(1)),
                503,
            ),
            (
                ManagerError::NoCapacity(RuntimeError::Launch {
                    id: id(),
                    step: bulkhead_runtime::LaunchStep::MountPoints,
                    errno: None,
                    detail: "/proc is a symlink".into(),
                }),
                400,
            ),
            (
                ManagerError::AttachStorage {
                    path: "/x".into(),
                    source: io(),
                },
                500,
            ),
            (
                ManagerError::EnvdSetup(EnvdError::Status("500".into())),
                500,
            ),
            (
                ManagerError::Freeze {
                    action: "pausing",
                    id: id(),
                    source: CgroupError::Mountinfo(io()),
                },
                500,
            ),
            (
                ManagerError::Store {
                    op: "recording the sandbox",
                    source: StoreError::Conflict {
                        what: ConflictKind::SandboxId,
                    },
                },
                500,
            ),
        ];
        for (e, want) in cases {
            let shown = e.to_string();
            assert_eq!(status(e).as_u16(), want, "{shown}");
        }
        let panicked = tokio::spawn(async { panic!("on purpose") })
            .await
            .unwrap_err();
        assert_eq!(status(ManagerError::Task(panicked)), 500);
    }
}
