//! HTTP to a port inside a sandbox, over a connection made in the sandbox's network
//! namespace. Used by the edge proxy and to configure envd.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bulkhead_runtime::Sandbox;
use hyper::Request;
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::task::JoinHandle;

/// Reaching the sandbox port failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxHttpError {
    /// Nothing listens on the port (connection refused or timed out).
    #[error("port {0} is not open")]
    PortClosed(u16),
    /// The HTTP exchange failed.
    #[error("http exchange with the sandbox failed")]
    Http(#[source] hyper::Error),
    /// A blocking task failed.
    #[error("sandbox connection task failed")]
    Join,
}

/// A response body from the sandbox that owns its connection: dropped before its end (the
/// client went away), it closes the connection at once, so the server in the sandbox sees
/// the disconnect on its next write instead of whenever hyper next tries to deliver a chunk
/// nobody reads (a code-interpreter cell is interrupted on that disconnect).
pub struct UpstreamBody {
    body: Incoming,
    conn: JoinHandle<()>,
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Sends `req` to `port` on the sandbox's loopback and returns the response, its body
/// streaming. One connection per request, closed when the body is dropped.
pub async fn send(
    sandbox: Arc<Sandbox>,
    port: u16,
    req: Request<Body>,
) -> Result<hyper::Response<UpstreamBody>, SandboxHttpError> {
    let std_stream =
        tokio::task::spawn_blocking(move || sandbox.connect_tcp(port, Duration::from_secs(2)))
            .await
            .map_err(|_| SandboxHttpError::Join)?
            .map_err(|_| SandboxHttpError::PortClosed(port))?;
    std_stream
        .set_nonblocking(true)
        .map_err(|_| SandboxHttpError::PortClosed(port))?;
    let stream = tokio::net::TcpStream::from_std(std_stream)
        .map_err(|_| SandboxHttpError::PortClosed(port))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(SandboxHttpError::Http)?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    match sender.send_request(req).await {
        Ok(resp) => Ok(resp.map(|body| UpstreamBody { body, conn })),
        Err(e) => {
            conn.abort();
            Err(SandboxHttpError::Http(e))
        }
    }
}
