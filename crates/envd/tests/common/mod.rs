//! Test fixture: a real envd on 127.0.0.1:0 with its own passwd/group files (user `user` =
//! uid 1000 with a temp home, and `root`), and a raw Connect JSON client that frames requests
//! exactly as the SDKs do.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use bulkhead_envd::{AccessToken, EnvdConfig};
use futures_util::StreamExt;
use serde_json::Value;

pub const UID: u32 = 1000;

pub struct Envd {
    pub base: String,
    pub root: tempfile::TempDir,
    pub home: PathBuf,
    pub token: Option<String>,
    pub http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Envd {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn start() -> Envd {
    start_with(|_| {}).await
}

pub async fn start_with(tweak: impl FnOnce(&mut EnvdConfig)) -> Envd {
    assert!(
        nix::unistd::geteuid().is_root(),
        "envd tests run as root (they switch users)"
    );
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let home = root.path().join("home/user");
    std::fs::create_dir_all(&home).expect("home");
    std::os::unix::fs::chown(&home, Some(UID), Some(UID)).expect("chown home");
    std::fs::set_permissions(
        root.path().join("home"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let passwd = root.path().join("passwd");
    std::fs::write(
        &passwd,
        format!(
            "root:x:0:0:root:/root:/bin/bash\nuser:x:{UID}:{UID}::{}:/bin/bash\n",
            home.display()
        ),
    )
    .expect("passwd");
    let group = root.path().join("group");
    std::fs::write(
        &group,
        format!("root:x:0:\nuser:x:{UID}:\nextra:x:1234:user\n"),
    )
    .expect("group");
    let mut config = EnvdConfig {
        passwd_path: passwd,
        group_path: group,
        ..EnvdConfig::default()
    };
    tweak(&mut config);
    let token = config.access_token.as_ref().map(|t| t.expose().to_owned());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        bulkhead_envd::serve(config, listener, async move {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    Envd {
        base: format!("http://{addr}"),
        root,
        home,
        token,
        http: reqwest::Client::new(),
        shutdown: Some(tx),
    }
}

pub fn token(t: &str) -> Option<AccessToken> {
    Some(AccessToken::new(t))
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("base64 string"))
        .expect("base64")
}

pub fn envelope(flags: u8, msg: &Value) -> Vec<u8> {
    let payload = msg.to_string().into_bytes();
    let mut out = vec![flags];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

pub fn basic(user: &str) -> String {
    format!("Basic {}", b64(format!("{user}:").as_bytes()))
}

impl Envd {
    fn with_token(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => rb.header("x-access-token", t),
            None => rb,
        }
    }

    /// A unary call as the Python SDK sends it; returns (status, content-type, JSON body).
    pub async fn unary(&self, method: &str, msg: Value) -> (u16, String, Value) {
        self.unary_with(method, msg, &[]).await
    }

    pub async fn unary_with(
        &self,
        method: &str,
        msg: Value,
        headers: &[(&str, &str)],
    ) -> (u16, String, Value) {
        let mut rb = self
            .http
            .post(format!("{}/{method}", self.base))
            .header("content-type", "application/json")
            .header("connect-protocol-version", "1")
            .header("connect-timeout-ms", "60000")
            .body(msg.to_string());
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let res = self.with_token(rb).send().await.expect("unary request");
        let status = res.status().as_u16();
        let ct = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        let text = res.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("json body")
        };
        (status, ct, body)
    }

    /// Opens a server stream; the request is one envelope.
    pub async fn stream(&self, method: &str, msg: Value, headers: &[(&str, &str)]) -> Stream {
        let mut rb = self
            .http
            .post(format!("{}/{method}", self.base))
            .header("content-type", "application/connect+json")
            .header("connect-protocol-version", "1")
            .body(envelope(0, &msg));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let res = self.with_token(rb).send().await.expect("stream request");
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(
            res.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/connect+json")
        );
        Stream {
            body: Box::pin(res.bytes_stream()),
            buf: Vec::new(),
        }
    }

    /// Starts `bash -l -c <cmd>` like `commands.run`.
    pub async fn run(&self, cmd: &str, extra: Value, headers: &[(&str, &str)]) -> Stream {
        let mut msg = serde_json::json!({ "process": { "cmd": "/bin/bash", "args": ["-l", "-c", cmd] }, "stdin": false });
        if let Some(e) = extra.as_object() {
            for (k, v) in e {
                if k == "process" {
                    for (pk, pv) in v.as_object().expect("process object") {
                        msg["process"][pk] = pv.clone();
                    }
                } else {
                    msg[k] = v.clone();
                }
            }
        }
        let mut h = vec![
            ("keepalive-ping-interval", "50"),
            ("connect-timeout-ms", "60000"),
        ];
        h.extend_from_slice(headers);
        self.stream("process.Process/Start", msg, &h).await
    }
}

pub struct Stream {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: Vec<u8>,
}

/// One decoded envelope: flags and JSON.
#[derive(Debug, Clone)]
pub struct Msg {
    pub flags: u8,
    pub json: Value,
}

impl Stream {
    /// The next envelope, or None at end of body. Panics after 20 s.
    pub async fn next(&mut self) -> Option<Msg> {
        tokio::time::timeout(Duration::from_secs(20), self.next_inner())
            .await
            .expect("stream message within 20 s")
    }

    async fn next_inner(&mut self) -> Option<Msg> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if self.buf.len() >= 5 + len {
                    let flags = self.buf[0];
                    let json =
                        serde_json::from_slice(&self.buf[5..5 + len]).expect("envelope json");
                    self.buf.drain(..5 + len);
                    return Some(Msg { flags, json });
                }
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => panic!("stream body error: {e}"),
                None => {
                    assert!(self.buf.is_empty(), "body ended inside an envelope");
                    return None;
                }
            }
        }
    }

    /// Reads to the end: (data messages, end-stream JSON). Asserts the end-stream is last.
    pub async fn collect(mut self) -> (Vec<Value>, Value) {
        let mut msgs = Vec::new();
        while let Some(m) = self.next().await {
            if m.flags & 2 != 0 {
                assert!(
                    self.next().await.is_none(),
                    "nothing may follow the end-stream envelope"
                );
                return (msgs, m.json);
            }
            msgs.push(m.json);
        }
        panic!("stream ended without an end-stream envelope");
    }
}

/// Concatenated output of one kind from process events.
pub fn output(msgs: &[Value], kind: &str) -> String {
    let mut out = Vec::new();
    for m in msgs {
        if let Some(d) = m["event"]["data"].get(kind) {
            out.extend(unb64(d));
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The single end event, asserting start came first and end last (keepalives aside).
pub fn check_order(msgs: &[Value]) -> Value {
    let events: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["event"].get("keepalive").is_none())
        .collect();
    assert!(
        events
            .first()
            .is_some_and(|m| m["event"]["start"]["pid"].as_u64().is_some()),
        "first event must be start: {msgs:?}"
    );
    let last = events.last().expect("events");
    assert!(
        last["event"].get("end").is_some(),
        "last event must be end: {msgs:?}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|m| m["event"].get("end").is_some())
            .count(),
        1
    );
    last["event"]["end"].clone()
}
