//! Streaming responses: HTTP 200 with `Content-Type: application/connect+json` (exactly), data
//! envelopes flushed one by one, and always one end-stream envelope last.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use tokio::sync::mpsc;

use super::ConnectError;
use super::envelope::{FLAG_END_STREAM, encode};

/// The client of a stream has gone away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stream client disconnected")]
pub struct Disconnected;

/// Writer side of a streaming response. Dropping it without [`StreamSink::finish`] ends the
/// body without an end-stream envelope, which clients treat as an error: always finish.
pub struct StreamSink {
    tx: mpsc::Sender<Bytes>,
}

/// Creates a streaming response and the sink that feeds it.
pub fn channel() -> (StreamSink, Response) {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let mut res = Response::new(Body::from_stream(body));
    *res.status_mut() = StatusCode::OK;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/connect+json"),
    );
    (StreamSink { tx }, res)
}

/// A streaming response that only carries an end-stream error (errors before the first
/// message are sent this way, as connect-go does).
pub fn error_response(err: ConnectError) -> Response {
    let (sink, res) = channel();
    tokio::spawn(sink.finish(Err(err)));
    res
}

impl StreamSink {
    /// Sends one data envelope.
    pub async fn send<T: Serialize>(&self, message: &T) -> Result<(), Disconnected> {
        let payload = serde_json::to_vec(message).map_err(|_| Disconnected)?;
        self.tx
            .send(encode(0, &payload))
            .await
            .map_err(|_| Disconnected)
    }

    /// Sends the end-stream envelope: `{}` on success, `{"error":{..}}` otherwise.
    pub async fn finish(self, result: Result<(), ConnectError>) {
        let payload = match result {
            Ok(()) => serde_json::json!({}),
            Err(err) => serde_json::json!({ "error": err.to_json() }),
        };
        let _ = self
            .tx
            .send(encode(FLAG_END_STREAM, payload.to_string().as_bytes()))
            .await;
    }

    /// Resolves when the client has gone away (the response body was dropped).
    pub async fn closed(&self) {
        self.tx.closed().await;
    }
}

/// The keepalive period asked for by `Keepalive-Ping-Interval: <seconds>`, else `default`.
pub fn keepalive_interval(headers: &HeaderMap, default: Duration) -> Duration {
    headers
        .get("keepalive-ping-interval")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(default)
}

/// The deadline from `Connect-Timeout-Ms`, if positive.
pub fn timeout(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("connect-timeout-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}
