//! A small S3 client: path-style requests signed with SigV4, retried on transient failures.
//!
//! One request per file: [`objects`] (GET/HEAD/PUT/DELETE/copy), [`list`] (ListObjectsV2),
//! [`multipart`]. Keys are full object keys (mount prefix included).

pub(crate) mod list;
pub(crate) mod meta;
mod multipart;
mod objects;
pub(crate) mod sigv4;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::{Method, StatusCode};

pub use list::{ListPage, ListedObject};
pub use meta::Meta;
pub use objects::ObjectMeta;

use crate::credentials::Credentials;
use crate::error::S3Error;

/// How many times a transient failure (network error, 5xx, 429) is retried.
const RETRIES: u32 = 3;

/// An S3 endpoint + bucket + credentials. Cheap to clone (shares one connection pool).
///
/// Server quirk handled here: some S3-compatible servers (moto among them) canonicalize a
/// `/` in query values unencoded, unlike AWS. When a signed request with a `/` in its query
/// is refused with `SignatureDoesNotMatch`, it is retried once the other way, and the way
/// that worked is kept for later requests.
#[derive(Clone, Debug)]
pub struct S3Client {
    raw_slash: Arc<AtomicBool>,
    http: reqwest::Client,
    endpoint: String,
    host: String,
    bucket: String,
    region: String,
    credentials: Option<Credentials>,
    /// The longest one request may take, all attempts together (see [`S3Client::send`]).
    operation_timeout: Duration,
}

/// How long one request may take, all attempts together, unless set otherwise
/// ([`S3Client::with_operation_timeout`]).
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Server-side copies and multipart completions may take this many times longer: S3 spends
/// minutes on them for large objects.
const SLOW_OPERATION_FACTOR: u32 = 10;

/// One request before signing.
pub(crate) struct Req<'a> {
    pub method: Method,
    pub key: Option<&'a str>,
    pub query: Vec<(String, String)>,
    pub amz_headers: Vec<(String, String)>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Bytes>,
}

impl<'a> Req<'a> {
    pub(crate) fn new(method: Method, key: Option<&'a str>) -> Self {
        Self {
            method,
            key,
            query: Vec::new(),
            amz_headers: Vec::new(),
            headers: Vec::new(),
            body: None,
        }
    }
}

impl S3Client {
    /// A client for `bucket` at `endpoint` (`http(s)://host[:port]`, no path).
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS setup).
    pub fn new(
        endpoint: &str,
        bucket: &str,
        region: &str,
        credentials: Option<Credentials>,
        request_timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // A per-read timeout, not a total one: streamed GETs of large objects may take long.
            .read_timeout(request_timeout)
            .tcp_nodelay(true)
            .pool_max_idle_per_host(32)
            .no_proxy()
            .build()?;
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let host = endpoint
            .split_once("://")
            .map_or(endpoint.as_str(), |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        Ok(Self {
            raw_slash: Arc::new(AtomicBool::new(false)),
            http,
            endpoint,
            host,
            bucket: bucket.to_string(),
            region: region.to_string(),
            credentials,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
        })
    }

    /// The same client with `timeout` as the longest one request may take.
    #[must_use]
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// The deadline of `req`: server-side copies and multipart completions get longer.
    fn deadline_of(&self, req: &Req<'_>) -> Duration {
        let slow = req
            .amz_headers
            .iter()
            .any(|(k, _)| k == "x-amz-copy-source")
            || (req.method == Method::POST && req.query.iter().any(|(k, _)| k == "uploadId"));
        if slow {
            self.operation_timeout * SLOW_OPERATION_FACTOR
        } else {
            self.operation_timeout
        }
    }

    /// Runs `fut` (a request and the reading of its body) within the operation deadline of a
    /// plain request, as [`S3Error::Timeout`] when it passes.
    pub(crate) async fn within_deadline<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, S3Error>>,
    ) -> Result<T, S3Error> {
        let after = self.operation_timeout;
        tokio::time::timeout(after, fut).await.unwrap_or_else(|_| {
            crate::stats::error();
            Err(S3Error::Timeout { after })
        })
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends a request, retrying transient failures, and returns a successful response.
    ///
    /// All attempts together end at the request's deadline (the operation timeout, ten times
    /// that for copies and completions), so a server that accepts connections and never
    /// answers fails the call with [`S3Error::Timeout`] instead of holding it through every
    /// retry's read timeout.
    pub(crate) async fn send(&self, req: Req<'_>) -> Result<reqwest::Response, S3Error> {
        let after = self.deadline_of(&req);
        match tokio::time::timeout(after, self.send_retrying(req)).await {
            Ok(r) => r,
            Err(_) => {
                crate::stats::error();
                tracing::debug!(?after, "s3 request passed its deadline");
                Err(S3Error::Timeout { after })
            }
        }
    }

    /// Sends a request and reads its whole body. `checked`: the body is an error when it
    /// names a `<Code>` (copies and completions fail after their 200 status line).
    pub(crate) async fn send_for_body(
        &self,
        req: Req<'_>,
        checked: bool,
    ) -> Result<Bytes, S3Error> {
        let body = self
            .send(req)
            .await?
            .bytes()
            .await
            .map_err(S3Error::Network)?;
        if checked && let Some(code) = xml_text(&body, "Code") {
            return Err(S3Error::Service { status: 200, code });
        }
        Ok(body)
    }

    async fn send_retrying(&self, req: Req<'_>) -> Result<reqwest::Response, S3Error> {
        let mut attempt = 0;
        let mut flipped = false;
        loop {
            match self.send_once(&req).await {
                Err(S3Error::AccessDenied { code })
                    if code == "SignatureDoesNotMatch"
                        && !flipped
                        && self.credentials.is_some()
                        && req.query.iter().any(|(_, v)| v.contains('/')) =>
                {
                    flipped = true;
                    let was = self.raw_slash.fetch_xor(true, Ordering::Relaxed);
                    tracing::debug!(
                        raw_slash = !was,
                        "retrying with the other query canonicalization"
                    );
                }
                Err(e) if e.is_transient() && attempt < RETRIES => {
                    crate::stats::retry();
                    attempt += 1;
                    tracing::debug!(attempt, error = %e, "retrying s3 request");
                    tokio::time::sleep(Duration::from_millis(100 * 3u64.pow(attempt - 1))).await;
                }
                other => {
                    if matches!(&other, Err(e) if !matches!(e, S3Error::NotFound)) {
                        crate::stats::error();
                    }
                    return other;
                }
            }
        }
    }

    async fn send_once(&self, req: &Req<'_>) -> Result<reqwest::Response, S3Error> {
        crate::stats::request();
        if let Some(b) = &req.body {
            crate::stats::uploaded(b.len());
        }
        let path = match req.key {
            Some(key) => format!("/{}/{}", self.bucket, sigv4::encode_key(key)),
            None => format!("/{}", self.bucket),
        };
        let query = sigv4::canonical_query(&req.query, self.raw_slash.load(Ordering::Relaxed));
        let url = if query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{query}", self.endpoint)
        };
        let mut builder = self.http.request(req.method.clone(), url);
        for (k, v) in &req.amz_headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        for (k, v) in &req.headers {
            builder = builder.header(*k, v.as_str());
        }
        if let Some(creds) = &self.credentials {
            let input = sigv4::SignInput {
                method: req.method.as_str(),
                path: &path,
                query: &query,
                host: &self.host,
                amz_headers: &req.amz_headers,
                region: &self.region,
                now: SystemTime::now(),
            };
            for (k, v) in sigv4::sign(&input, creds) {
                builder = builder.header(k, v);
            }
        }
        if let Some(body) = &req.body {
            builder = builder.body(body.clone());
        } else if req.method == Method::PUT || req.method == Method::POST {
            builder = builder.header("content-length", "0");
        }
        let resp = builder.send().await.map_err(S3Error::Network)?;
        if resp.status().is_success() || resp.status() == StatusCode::PARTIAL_CONTENT {
            return Ok(resp);
        }
        Err(error_from(resp).await)
    }
}

/// Turns an error response into an [`S3Error`] from its status and `<Code>`.
async fn error_from(resp: reqwest::Response) -> S3Error {
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap_or_default();
    let code = xml_text(&body, "Code").unwrap_or_default();
    match (status, code.as_str()) {
        (_, "NoSuchBucket") => S3Error::NoSuchBucket,
        (404, _) | (_, "NoSuchKey") => S3Error::NotFound,
        (403, _)
        | (_, "InvalidAccessKeyId")
        | (_, "SignatureDoesNotMatch")
        | (_, "AccessDenied")
        | (_, "InvalidToken")
        | (_, "ExpiredToken") => S3Error::AccessDenied {
            code: if code.is_empty() {
                "AccessDenied".into()
            } else {
                code
            },
        },
        _ => S3Error::Service { status, code },
    }
}

/// The text of the first `<tag>` element in an XML document, unescaped.
pub(crate) fn xml_text(body: &[u8], tag: &str) -> Option<String> {
    let mut found = None;
    walk_xml(body, |path, text| {
        if found.is_none() && path.last().map(String::as_str) == Some(tag) {
            found = Some(text.to_string());
        }
    })
    .ok()?;
    found
}

/// Calls `leaf(path, text)` at the end of every element that had text, with the element
/// path (outermost first) and its unescaped text. quick-xml reports entity references as
/// separate events, so text is gathered until the element ends.
pub(crate) fn walk_xml(body: &[u8], mut leaf: impl FnMut(&[String], &str)) -> Result<(), S3Error> {
    use quick_xml::events::Event;
    let malformed = || S3Error::Malformed {
        what: "response is not valid XML",
    };
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut buf = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                path.push(String::from_utf8_lossy(e.name().as_ref()).into_owned());
                text.clear();
            }
            Ok(Event::Text(t)) => text.push_str(&t.decode().map_err(|_| malformed())?),
            Ok(Event::CData(t)) => text.push_str(&String::from_utf8_lossy(&t)),
            Ok(Event::GeneralRef(r)) => {
                text.push('&');
                text.push_str(&String::from_utf8_lossy(&r));
                text.push(';');
            }
            Ok(Event::End(_)) => {
                if !text.is_empty() {
                    leaf(&path, &unescape(&text));
                    text.clear();
                }
                path.pop();
            }
            Ok(Event::Eof) => return Ok(()),
            Err(_) => return Err(malformed()),
            _ => {}
        }
        buf.clear();
    }
}

/// Resolves the five predefined XML entities and numeric character references.
pub(crate) fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let ent = &rest[1..end];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_the_body() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>x &amp; y</Message></Error>";
        assert_eq!(xml_text(body, "Code").as_deref(), Some("NoSuchBucket"));
        assert_eq!(xml_text(body, "Message").as_deref(), Some("x & y"));
        assert_eq!(unescape("a&#x41;&#66;&lt;&bogus"), "aAB<&bogus");
    }
}
