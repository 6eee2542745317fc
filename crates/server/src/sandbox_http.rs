//! HTTP to a port inside a sandbox, over a connection made in the sandbox's network
//! namespace. Used by the edge proxy and to configure envd.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bulkhead_runtime::Sandbox;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

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

/// Sends `req` to `port` on the sandbox's loopback and returns the response, its body
/// streaming. One connection per request.
pub async fn send(
    sandbox: Arc<Sandbox>,
    port: u16,
    req: Request<Body>,
) -> Result<hyper::Response<Incoming>, SandboxHttpError> {
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
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
        .send_request(req)
        .await
        .map_err(SandboxHttpError::Http)
}
