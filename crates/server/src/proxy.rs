//! The edge proxy: requests for a sandbox port, routed by the `E2b-Sandbox-Id` /
//! `E2b-Sandbox-Port` headers (on a `localhost`, IP or `sandbox.*` host) or by a
//! `<port>-<sandboxid>.<domain>` host, are forwarded into the sandbox's network namespace.
//! Error bodies match the reference proxy's, because the SDKs key on their messages.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::sandbox_http::{self, SandboxHttpError};
use crate::signed_url::{self, Resolution};
use crate::state::AppState;

/// envd paths only the host may call.
const INTERNAL_PATHS: &[&str] = &[
    "/init",
    "/freeze",
    "/unfreeze",
    "/collapse",
    "/fsfreeze",
    "/fsthaw",
    "/upgrade",
];
const ENVD_PORT: u16 = bulkhead_envd::ENVD_PORT;

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    /// Sandbox id.
    pub sandbox_id: String,
    /// Port inside the sandbox.
    pub port: u16,
}

/// `host[:port]` → host (`[v6]:port` → `[v6]`).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map(|i| &host[..=i]).unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn is_ip(host: &str) -> bool {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok()
}

/// Decides whether a request is for a sandbox. `Err` carries a 400 message for malformed
/// routing headers.
pub fn target(headers: &axum::http::HeaderMap, domain: &str) -> Result<Option<Target>, String> {
    let host_header = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let host = strip_port(host_header);
    let id_header = headers.get("e2b-sandbox-id").and_then(|v| v.to_str().ok());
    let port_header = headers
        .get("e2b-sandbox-port")
        .and_then(|v| v.to_str().ok());
    let shared_host = host == "localhost" || is_ip(host) || host.starts_with("sandbox.");
    if shared_host && (id_header.is_some() || port_header.is_some()) {
        let (Some(id), Some(port)) = (id_header, port_header) else {
            return Err("both E2b-Sandbox-Id and E2b-Sandbox-Port headers are required".into());
        };
        let port = port
            .trim()
            .parse::<u16>()
            .map_err(|_| format!("invalid E2b-Sandbox-Port {port:?}"))?;
        return Ok(Some(Target {
            sandbox_id: id.trim().to_string(),
            port,
        }));
    }
    let label = host.split('.').next().unwrap_or("");
    let rest = &host[label.len()..];
    if let Some((port, id)) = label.split_once('-')
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && (rest.trim_start_matches('.') == domain || domain.is_empty())
        && let Ok(port) = port.parse::<u16>()
    {
        return Ok(Some(Target {
            sandbox_id: id.to_string(),
            port,
        }));
    }
    Ok(None)
}

fn proxy_error(status: StatusCode, sandbox_id: &str, message: &str) -> Response {
    let body =
        serde_json::json!({"sandboxId": sandbox_id, "message": message, "code": status.as_u16()});
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// Middleware in front of the API router: sandbox requests are proxied, the rest passes on.
/// A `/files` request that names no sandbox but carries a signature goes to the sandbox
/// that signed it ([`signed_url`]).
pub async fn route(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    // HTTP/2 carries the host as the `:authority` pseudo-header, which hyper keeps in the URI.
    if !req.headers().contains_key(header::HOST)
        && let Some(authority) = req.uri().authority()
        && let Ok(v) = HeaderValue::from_str(authority.as_str())
    {
        req.headers_mut().insert(header::HOST, v);
    }
    let target = match target(req.headers(), &st.domain) {
        Ok(Some(t)) => t,
        Ok(None) => match signed_url::resolve(&st.manager, req.method(), req.uri()) {
            Resolution::NotSigned => return next.run(req).await,
            Resolution::Sandbox(entry) => Target {
                sandbox_id: entry.id().to_string(),
                port: ENVD_PORT,
            },
            Resolution::Invalid => return invalid_signature(),
        },
        Err(message) => return proxy_error(StatusCode::BAD_REQUEST, "", &message),
    };
    forward(st, target, req).await
}

/// envd's answer to a signature that does not verify.
fn invalid_signature() -> Response {
    let body = serde_json::json!({"code": 401, "message": "invalid signature"});
    let mut resp = (StatusCode::UNAUTHORIZED, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

async fn forward(st: AppState, target: Target, mut req: Request) -> Response {
    let Some(entry) = st.manager.get_any(&target.sandbox_id) else {
        return proxy_error(
            StatusCode::BAD_GATEWAY,
            &target.sandbox_id,
            "The sandbox was not found",
        );
    };
    if entry.status() != crate::manager::SandboxStatus::Running {
        return proxy_error(
            StatusCode::BAD_GATEWAY,
            &target.sandbox_id,
            "The sandbox was not found",
        );
    }
    if target.port == ENVD_PORT && INTERNAL_PATHS.contains(&req.uri().path()) {
        return proxy_error(
            StatusCode::FORBIDDEN,
            &target.sandbox_id,
            "This path is not available from outside the sandbox",
        );
    }
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    *req.uri_mut() = match path.parse::<Uri>() {
        Ok(u) => u,
        Err(_) => {
            return proxy_error(
                StatusCode::BAD_REQUEST,
                &target.sandbox_id,
                "invalid request path",
            );
        }
    };
    let headers = req.headers_mut();
    for h in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "e2b-sandbox-id",
        "e2b-sandbox-port",
    ] {
        headers.remove(h);
    }
    headers.insert(header::HOST, HeaderValue::from_static("localhost"));
    // The sandbox hop is HTTP/1.1 whatever the client spoke: an HTTP/2 request forwarded
    // with its version kept would leave a body of unknown length without chunked framing.
    *req.version_mut() = Version::HTTP_11;
    let timer = execution_kind(target.port, req.method(), req.uri().path())
        .map(|k| crate::prometheus::METRICS.execution(k));
    match sandbox_http::send(entry.sandbox().clone(), target.port, req).await {
        Ok(resp) => match timer {
            Some(t) => resp.map(|b| {
                Body::new(Timed {
                    inner: b,
                    _timer: t,
                })
            }),
            None => resp.map(Body::new),
        },
        Err(SandboxHttpError::PortClosed(_)) => proxy_error(
            StatusCode::BAD_GATEWAY,
            &target.sandbox_id,
            "The sandbox is running but port is not open",
        ),
        Err(e) => {
            tracing::warn!(sandbox_id = %target.sandbox_id, port = target.port, error = %e, "proxying into the sandbox failed");
            proxy_error(
                StatusCode::BAD_GATEWAY,
                &target.sandbox_id,
                "The sandbox is running but port is not open",
            )
        }
    }
}

/// A code cell or a command, by the request that starts it.
fn execution_kind(
    port: u16,
    method: &axum::http::Method,
    path: &str,
) -> Option<crate::prometheus::ExecutionKind> {
    use crate::prometheus::ExecutionKind;
    if method != axum::http::Method::POST {
        return None;
    }
    match (port, path) {
        (crate::manager::interpreter::PORT, "/execute") => Some(ExecutionKind::RunCode),
        (ENVD_PORT, "/process.Process/Start") => Some(ExecutionKind::Command),
        _ => None,
    }
}

/// A proxied answer whose end (or abandonment) ends an execution's timer.
struct Timed<B> {
    inner: B,
    _timer: crate::prometheus::ExecutionTimer,
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for Timed<B> {
    type Data = B::Data;
    type Error = B::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn routes_by_headers_on_shared_hosts() {
        let t = target(
            &h(&[
                ("host", "127.0.0.1:3000"),
                ("e2b-sandbox-id", "abc"),
                ("e2b-sandbox-port", "49983"),
            ]),
            "example.com",
        );
        assert_eq!(
            t,
            Ok(Some(Target {
                sandbox_id: "abc".into(),
                port: 49983
            }))
        );
        let t = target(
            &h(&[("host", "localhost"), ("e2b-sandbox-id", "abc")]),
            "example.com",
        );
        assert!(t.is_err());
        let t = target(
            &h(&[
                ("host", "localhost:3000"),
                ("e2b-sandbox-id", "abc"),
                ("e2b-sandbox-port", "x"),
            ]),
            "d",
        );
        assert!(t.is_err());
    }

    #[test]
    fn routes_by_host_label() {
        let t = target(&h(&[("host", "8000-abc123.example.com")]), "example.com");
        assert_eq!(
            t,
            Ok(Some(Target {
                sandbox_id: "abc123".into(),
                port: 8000
            }))
        );
        assert_eq!(
            target(&h(&[("host", "api.example.com")]), "example.com"),
            Ok(None)
        );
        assert_eq!(
            target(&h(&[("host", "localhost:3000")]), "example.com"),
            Ok(None)
        );
        assert_eq!(
            target(&h(&[("host", "8000-abc.other.org")]), "example.com"),
            Ok(None)
        );
    }
}
