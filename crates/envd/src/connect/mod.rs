//! A small Connect protocol layer (JSON codec only) on top of axum: error codes and their HTTP
//! statuses, envelope framing, unary request extraction and streaming responses.
//!
//! The E2B SDKs only ever speak Connect v1 with JSON, so binary protobuf, gRPC and compression
//! are not implemented; a request with another content type is refused with
//! `unimplemented`/415-style errors rather than misread.

pub mod envelope;
pub mod json;
pub mod stream;
pub mod unary;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A Connect error code (the subset of the spec envd produces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The client went away or cancelled.
    Canceled,
    /// The request is malformed or names something unusable.
    InvalidArgument,
    /// The deadline (`Connect-Timeout-Ms`) expired.
    DeadlineExceeded,
    /// The named process or path does not exist.
    NotFound,
    /// The path already exists.
    AlreadyExists,
    /// The caller may not do this.
    PermissionDenied,
    /// Out of some resource.
    ResourceExhausted,
    /// The target is in the wrong state.
    FailedPrecondition,
    /// Not implemented by this envd.
    Unimplemented,
    /// An internal failure.
    Internal,
    /// The caller is not authenticated (unknown user).
    Unauthenticated,
}

impl Code {
    /// The wire name (`"not_found"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Canceled => "canceled",
            Code::InvalidArgument => "invalid_argument",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::NotFound => "not_found",
            Code::AlreadyExists => "already_exists",
            Code::PermissionDenied => "permission_denied",
            Code::ResourceExhausted => "resource_exhausted",
            Code::FailedPrecondition => "failed_precondition",
            Code::Unimplemented => "unimplemented",
            Code::Internal => "internal",
            Code::Unauthenticated => "unauthenticated",
        }
    }

    /// The HTTP status of a unary error with this code (Connect spec table).
    pub fn http_status(self) -> StatusCode {
        match self {
            Code::Canceled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::InvalidArgument | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists => StatusCode::CONFLICT,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        }
    }
}

/// An error as sent on the wire: a code and a human-readable message. Domain errors
/// (`ProcessError`, `FsError`, ...) convert into this exactly once, at the RPC boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ConnectError {
    /// The Connect code.
    pub code: Code,
    /// The message shown to the SDK user.
    pub message: String,
}

impl ConnectError {
    /// Builds an error.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The JSON body `{"code":..,"message":..}` used by unary errors and end-stream errors.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "code": self.code.as_str(), "message": self.message })
    }
}

impl IntoResponse for ConnectError {
    fn into_response(self) -> Response {
        let body = self.to_json().to_string();
        let mut res = (self.code.http_status(), body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res
    }
}

/// A unary success: HTTP 200, `application/json`, the message as proto3 JSON.
pub fn unary_ok<T: Serialize>(message: &T) -> Response {
    match serde_json::to_vec(message) {
        Ok(body) => {
            let mut res = (StatusCode::OK, body).into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res
        }
        Err(err) => {
            ConnectError::new(Code::Internal, format!("encoding response: {err}")).into_response()
        }
    }
}
