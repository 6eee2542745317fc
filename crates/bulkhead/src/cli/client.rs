//! How client subcommands find the server: flags, else the SDK's variables
//! (`E2B_API_URL`, `E2B_API_KEY`), else the local default server and its key file.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args as ClapArgs;

/// Connection options shared by client subcommands.
#[derive(Debug, Clone, ClapArgs)]
pub struct ServerArgs {
    /// Server URL (default: $E2B_API_URL, else http://127.0.0.1:3000).
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// API key (default: $E2B_API_KEY, else the key file of the local server).
    #[arg(long, global = true, value_name = "KEY", hide_env_values = true)]
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

impl ServerArgs {
    /// Resolves the server the way the SDK does.
    pub fn resolve(&self) -> anyhow::Result<Server> {
        let url = self
            .server
            .clone()
            .or_else(|| std::env::var("E2B_API_URL").ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "http://127.0.0.1:3000".into());
        let key = match self
            .api_key
            .clone()
            .or_else(|| std::env::var("E2B_API_KEY").ok().filter(|s| !s.is_empty()))
        {
            Some(k) => k,
            None => {
                let path = self.data_dir.join("api-key");
                std::fs::read_to_string(&path)
                    .with_context(|| format!("no API key: pass --api-key, set E2B_API_KEY, or run on the server host ({} unreadable)", path.display()))?
                    .trim()
                    .to_string()
            }
        };
        Ok(Server {
            url: url.trim_end_matches('/').to_string(),
            key,
        })
    }
}
