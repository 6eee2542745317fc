//! How client subcommands find the server: flags, else the SDK's variables
//! (`E2B_API_URL`, `E2B_API_KEY`), else the local default server and its key file.
//!
//! The key itself is never taken from argv: anything on a command line is readable by every
//! user of the host through `ps` and `/proc/<pid>/cmdline`. It comes from `E2B_API_KEY`, a
//! file named by `--api-key-file`, or the local server's key file.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args as ClapArgs;

/// Connection options shared by client subcommands.
#[derive(Debug, Clone, ClapArgs)]
pub struct ServerArgs {
    /// Server URL (default: $E2B_API_URL, else http://127.0.0.1:3000).
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// File holding the API key (default: $E2B_API_KEY, else the key file of the local
    /// server). The key is never accepted on the command line, where `ps` shows it.
    #[arg(long, global = true, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Refused: a key in argv is visible to every user of the host. Kept only to say so.
    #[arg(long, global = true, value_name = "KEY", hide = true)]
    pub api_key: Option<String>,
    /// Data directory of the local server, for its key file.
    #[arg(
        long,
        global = true,
        env = "BULKHEAD_DATA_DIR",
        default_value = "/var/lib/bulkhead",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
}

/// A resolved server.
#[derive(Debug, Clone)]
pub struct Server {
    /// Base URL without a trailing slash.
    pub url: String,
    /// API key.
    pub key: String,
}

impl Server {
    /// One API request with the key; the JSON answer (`Null` for none) and its status. A
    /// status of 400 or more is an error carrying the server's `message`.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        use serde_json::Value;
        let mut rb = reqwest::Client::new()
            .request(method, format!("{}{path}", self.url))
            .header("x-api-key", &self.key);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let res = rb
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.url))?;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status >= 400 {
            let msg = value
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            anyhow::bail!("server answered {status}: {msg}");
        }
        Ok((status, value))
    }
}

impl ServerArgs {
    /// Resolves the server the way the SDK does.
    pub fn resolve(&self) -> anyhow::Result<Server> {
        let url = self
            .server
            .clone()
            .or_else(|| std::env::var("E2B_API_URL").ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "http://127.0.0.1:3000".into());
        if self.api_key.is_some() {
            anyhow::bail!(
                "--api-key would put the key in the process list (ps shows every argument to \
                 every user): set E2B_API_KEY or pass --api-key-file FILE instead"
            );
        }
        let key = if let Some(path) = &self.api_key_file {
            read_key_file(path)?
        } else if let Some(k) = std::env::var("E2B_API_KEY").ok().filter(|s| !s.is_empty()) {
            k
        } else {
            let path = self.data_dir.join("api-key");
            read_key_file(&path).with_context(|| {
                "no API key: set E2B_API_KEY, pass --api-key-file FILE, or run on the server host"
            })?
        };
        Ok(Server {
            url: url.trim_end_matches('/').to_string(),
            key,
        })
    }
}

/// The first line of `path`, trimmed; an empty file is an error, not an empty key.
fn read_key_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the API key file {}", path.display()))?;
    let key = text.lines().next().unwrap_or("").trim();
    if key.is_empty() {
        anyhow::bail!("the API key file {} is empty", path.display());
    }
    Ok(key.to_string())
}
