//! A logging HTTP proxy in front of a registry: forwards every request as is and records its
//! method, path and `Range` header, so a test can see which requests a pull made. It can also
//! break the first transfer of one blob halfway, as a dropped connection does.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::Response;

/// One forwarded request.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
}

/// A running proxy; it stops with the test's runtime.
pub struct Proxy {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    log: Arc<Mutex<Vec<Logged>>>,
}

struct Shared {
    upstream: String,
    /// The blob path whose first GET is cut after half its body, until it has been.
    cut: Mutex<Option<String>>,
    /// Manifest bodies get a trailing newline: the bytes no longer match their digest.
    tamper_manifests: bool,
    client: reqwest::Client,
    log: Arc<Mutex<Vec<Logged>>>,
}

impl Proxy {
    /// Starts a proxy to `http://{upstream}` on a free port.
    pub async fn start(upstream: &str) -> Self {
        Self::start_inner(upstream, None, false).await
    }

    /// Like [`Proxy::start`], but every manifest body is altered by one byte.
    pub async fn start_tampering(upstream: &str) -> Self {
        Self::start_inner(upstream, None, true).await
    }

    /// Like [`Proxy::start`], but the first GET of blob `digest` ends after half its body.
    pub async fn start_cutting(upstream: &str, digest: &str) -> Self {
        Self::start_inner(upstream, Some(format!("/blobs/{digest}")), false).await
    }

    async fn start_inner(upstream: &str, cut: Option<String>, tamper_manifests: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("addr").to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            upstream: format!("http://{upstream}"),
            cut: Mutex::new(cut),
            tamper_manifests,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            log: log.clone(),
        });
        let app = axum::Router::new().fallback(forward).with_state(shared);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, log }
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The requests for blob `digest`.
    pub fn blob_requests(&self, digest: &str) -> Vec<Logged> {
        let suffix = format!("/blobs/{digest}");
        self.requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path.ends_with(&suffix))
            .collect()
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let range = parts
        .headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Ok(mut log) = shared.log.lock() {
        log.push(Logged {
            method: parts.method.to_string(),
            path: path.clone(),
            range,
        });
    }
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut upstream = shared
        .client
        .request(parts.method, format!("{}{path}", shared.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" {
            upstream = upstream.header(name, value);
        }
    }
    let Ok(answer) = upstream.send().await else {
        return status(StatusCode::BAD_GATEWAY);
    };
    let tamper = shared.tamper_manifests && path.contains("/manifests/");
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        let length = name == HeaderName::from_static("content-length");
        if name != HeaderName::from_static("transfer-encoding") && !(tamper && length) {
            response = response.header(name, value);
        }
    }
    let mut bytes = answer.bytes().await.unwrap_or_default();
    if tamper {
        let mut altered = bytes.to_vec();
        altered.push(b'\n');
        bytes = altered.into();
    }
    let cut_now = shared
        .cut
        .lock()
        .ok()
        .and_then(|mut cut| cut.take_if(|suffix| path.ends_with(suffix.as_str())))
        .is_some();
    let body = if cut_now {
        // The full Content-Length was sent; the connection dies after half the bytes.
        // The pause lets the server flush the first half before the error drops the
        // connection, so the client has bytes to resume from.
        let half = bytes.slice(..bytes.len() / 2);
        Body::from_stream(futures_util::stream::unfold(
            Some(half),
            |half| async move {
                match half {
                    Some(half) => Some((Ok(half), None)),
                    None => {
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        Some((Err(std::io::Error::other("cut by the test proxy")), None))
                    }
                }
            },
        ))
    } else {
        Body::from(bytes)
    };
    response
        .body(body)
        .unwrap_or_else(|_| status(StatusCode::BAD_GATEWAY))
}

fn status(code: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = code;
    response
}
