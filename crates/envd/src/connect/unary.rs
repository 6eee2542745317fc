//! Extraction of Connect requests: a unary JSON body, or the single envelope of a
//! server-streaming call.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use super::envelope::{Decoder, FLAG_END_STREAM};
use super::{Code, ConnectError};

/// Largest unary request body accepted.
const MAX_UNARY: usize = 16 << 20;

/// A unary request: `Content-Type: application/json`, body = the message.
pub struct Unary<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Unary<T> {
    type Rejection = ConnectError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = content_type(req.headers());
        if !(ct.is_empty() || ct.starts_with("application/json")) {
            return Err(ConnectError::new(
                Code::Unimplemented,
                format!("unsupported content type {ct:?}: only application/json is served"),
            ));
        }
        let body = axum::body::to_bytes(req.into_body(), MAX_UNARY)
            .await
            .map_err(|e| {
                ConnectError::new(Code::InvalidArgument, format!("reading request body: {e}"))
            })?;
        let _ = state;
        parse_message(&body).map(Unary)
    }
}

/// Parses a JSON message; an empty body is the empty message.
pub fn parse_message<T: DeserializeOwned>(body: &[u8]) -> Result<T, ConnectError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        ConnectError::new(
            Code::InvalidArgument,
            format!("invalid request message: {e}"),
        )
    })
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The request of a server-streaming call: exactly one envelope with the JSON message.
pub struct StreamRequest<T>(pub Result<T, ConnectError>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for StreamRequest<T> {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let ct = content_type(req.headers());
        if !ct.starts_with("application/connect+json") {
            return Ok(StreamRequest(Err(ConnectError::new(
                Code::Unimplemented,
                format!("unsupported content type {ct:?}: only application/connect+json is served"),
            ))));
        }
        let body: Result<Bytes, _> = axum::body::to_bytes(req.into_body(), MAX_UNARY).await;
        Ok(StreamRequest(match body {
            Ok(body) => single_envelope(&body),
            Err(e) => Err(ConnectError::new(
                Code::InvalidArgument,
                format!("reading request: {e}"),
            )),
        }))
    }
}

fn single_envelope<T: DeserializeOwned>(body: &[u8]) -> Result<T, ConnectError> {
    let mut dec = Decoder::default();
    dec.push(body);
    let invalid =
        |e: &dyn std::fmt::Display| ConnectError::new(Code::InvalidArgument, e.to_string());
    let env = dec
        .next_envelope()
        .map_err(|e| invalid(&e))?
        .ok_or_else(|| invalid(&"request body holds no envelope"))?;
    if env.flags & FLAG_END_STREAM != 0 {
        return Err(invalid(&"unexpected end-stream envelope in request"));
    }
    parse_message(&env.payload)
}
