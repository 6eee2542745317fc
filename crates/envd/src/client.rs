//! A minimal Connect JSON client for envd (feature `client`): health check, `/init`, and
//! running a command to completion. Used by the control plane and by tests.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt;
use serde::Deserialize;

use crate::config::AccessToken;
use crate::connect::envelope::{Decoder, FLAG_END_STREAM, encode};

/// A client call that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Transport failure.
    #[error("request to envd failed")]
    Http(#[from] reqwest::Error),
    /// A non-success HTTP status.
    #[error("envd answered {status}: {body}")]
    Status {
        /// The status.
        status: u16,
        /// The body.
        body: String,
    },
    /// A Connect error (`code`, `message`).
    #[error("envd error {code}: {message}")]
    Rpc {
        /// The Connect code.
        code: String,
        /// The message.
        message: String,
    },
    /// The response did not follow the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// How to run a command.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// User (`Authorization: Basic`); `None` = envd's default user.
    pub user: Option<String>,
    /// Working directory.
    pub cwd: Option<String>,
    /// Extra environment.
    pub envs: BTreeMap<String, String>,
    /// Process deadline (`Connect-Timeout-Ms`).
    pub timeout: Option<Duration>,
}

/// What a finished command produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// The pid it ran as.
    pub pid: u32,
    /// Standard output bytes.
    pub stdout: Vec<u8>,
    /// Standard error bytes.
    pub stderr: Vec<u8>,
    /// Exit code (-1 when killed by a signal).
    pub exit_code: i32,
    /// The end event's error text, if any.
    pub error: Option<String>,
}

/// A client for one envd base URL (`http://host:49983`).
#[derive(Debug, Clone)]
pub struct EnvdClient {
    base: String,
    http: reqwest::Client,
    token: Option<AccessToken>,
    headers: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct EndStream {
    error: Option<RpcErrorBody>,
}

#[derive(Deserialize)]
struct RpcErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl EnvdClient {
    /// A client for `base_url`, sending `token` as `X-Access-Token` when given.
    pub fn new(base_url: &str, token: Option<AccessToken>) -> Self {
        Self {
            base: base_url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            token,
            headers: Vec::new(),
        }
    }

    /// Routes every request to `sandbox_id`'s envd through an edge proxy shared by many
    /// sandboxes (`E2b-Sandbox-Id` / `E2b-Sandbox-Port` headers), as the SDKs do.
    pub fn via_proxy(mut self, sandbox_id: &str) -> Self {
        self.headers
            .push(("e2b-sandbox-id".into(), sandbox_id.into()));
        self.headers
            .push(("e2b-sandbox-port".into(), crate::ENVD_PORT.to_string()));
        self
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        for (k, v) in &self.headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        if let Some(t) = &self.token {
            rb = rb.header("x-access-token", t.expose());
        }
        rb
    }

    /// `GET /health`: true on any 2xx.
    pub async fn health(&self) -> Result<bool, ClientError> {
        Ok(self
            .request(reqwest::Method::GET, "/health")
            .send()
            .await?
            .status()
            .is_success())
    }

    /// `POST /init` with a JSON body (`envVars`, `accessToken`, `defaultUser`, `defaultWorkdir`).
    pub async fn init(&self, body: &serde_json::Value) -> Result<(), ClientError> {
        let res = self
            .request(reqwest::Method::POST, "/init")
            .json(body)
            .send()
            .await?;
        let status = res.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(ClientError::Status {
                status: status.as_u16(),
                body: res.text().await.unwrap_or_default(),
            })
        }
    }

    /// Runs `bash -l -c <command>` and collects its output until it ends.
    pub async fn run(
        &self,
        command: &str,
        opts: &RunOptions,
    ) -> Result<CommandOutput, ClientError> {
        let mut process = serde_json::json!({ "cmd": "/bin/bash", "args": ["-l", "-c", command], "envs": opts.envs });
        if let Some(cwd) = &opts.cwd {
            process["cwd"] = serde_json::json!(cwd);
        }
        let msg = serde_json::json!({ "process": process, "stdin": false }).to_string();
        let mut rb = self
            .request(reqwest::Method::POST, "/process.Process/Start")
            .header("content-type", "application/connect+json")
            .header("connect-protocol-version", "1")
            .body(encode(0, msg.as_bytes()).to_vec());
        if let Some(t) = opts.timeout {
            rb = rb.header("connect-timeout-ms", t.as_millis().to_string());
        }
        if let Some(user) = &opts.user {
            let cred = base64::engine::general_purpose::STANDARD.encode(format!("{user}:"));
            rb = rb.header("authorization", format!("Basic {cred}"));
        }
        let res = rb.send().await?;
        let status = res.status();
        if !status.is_success() {
            return Err(ClientError::Status {
                status: status.as_u16(),
                body: res.text().await.unwrap_or_default(),
            });
        }
        let mut out = CommandOutput::default();
        let mut ended = false;
        let mut dec = Decoder::default();
        let mut body = res.bytes_stream();
        while let Some(chunk) = body.next().await {
            dec.push(&chunk?);
            while let Some(env) = dec
                .next_envelope()
                .map_err(|e| ClientError::Protocol(e.to_string()))?
            {
                if env.flags & FLAG_END_STREAM != 0 {
                    let end: EndStream = serde_json::from_slice(&env.payload)
                        .map_err(|e| ClientError::Protocol(e.to_string()))?;
                    if let Some(err) = end.error {
                        return Err(ClientError::Rpc {
                            code: err.code,
                            message: err.message,
                        });
                    }
                    return if ended {
                        Ok(out)
                    } else {
                        Err(ClientError::Protocol(
                            "stream ended without an end event".into(),
                        ))
                    };
                }
                let v: serde_json::Value = serde_json::from_slice(&env.payload)
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
                apply_event(&v["event"], &mut out, &mut ended)?;
            }
        }
        Err(ClientError::Protocol(
            "response ended without an end-stream message".into(),
        ))
    }
}

fn apply_event(
    ev: &serde_json::Value,
    out: &mut CommandOutput,
    ended: &mut bool,
) -> Result<(), ClientError> {
    let b64 = |v: &serde_json::Value| -> Result<Vec<u8>, ClientError> {
        crate::connect::json::decode_b64(v.as_str().unwrap_or(""))
            .ok_or_else(|| ClientError::Protocol("bad base64 in output".into()))
    };
    if let Some(pid) = ev["start"]["pid"].as_u64() {
        out.pid = u32::try_from(pid).unwrap_or(0);
    } else if let Some(d) = ev["data"].as_object() {
        if let Some(s) = d.get("stdout") {
            out.stdout.extend(b64(s)?);
        }
        if let Some(s) = d.get("stderr").or_else(|| d.get("pty")) {
            out.stderr.extend(b64(s)?);
        }
    } else if let Some(end) = ev["end"].as_object() {
        out.exit_code = end
            .get("exitCode")
            .and_then(|c| c.as_i64())
            .and_then(|c| i32::try_from(c).ok())
            .unwrap_or(0);
        out.error = end.get("error").and_then(|e| e.as_str()).map(str::to_owned);
        *ended = true;
    }
    Ok(())
}
