//! `bulkhead envd`: the in-sandbox daemon speaking the E2B envd protocol. Started by the
//! sandbox init, not by users (hidden from `--help`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use bulkhead_envd::{AccessToken, EnvdConfig};

/// Exit code for a configuration that envd refuses (EX_USAGE).
const EXIT_BAD_CONFIG: u8 = 64;

/// How long open streams get after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Options of `bulkhead envd`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:49983", env = "BULKHEAD_ENVD_LISTEN")]
    pub listen: SocketAddr,
    /// File holding the access token that every request must carry (X-Access-Token).
    #[arg(long, value_name = "PATH")]
    pub access_token_file: Option<PathBuf>,
    /// The access token itself (prefer --access-token-file; the variable is not inherited by
    /// processes envd starts).
    #[arg(
        long = "access-token",
        env = "BULKHEAD_ENVD_ACCESS_TOKEN",
        hide_env_values = true
    )]
    pub access_token: Option<String>,
    /// User for requests that name none.
    #[arg(long, default_value = "user")]
    pub default_user: String,
    /// Working directory for commands without cwd (default: the user's home).
    #[arg(long, value_name = "DIR")]
    pub default_workdir: Option<PathBuf>,
    /// Sandbox-wide environment variable for every process, KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// The passwd file of the sandbox.
    #[arg(long, default_value = "/etc/passwd")]
    pub passwd: PathBuf,
    /// The group file of the sandbox.
    #[arg(long, default_value = "/etc/group")]
    pub group: PathBuf,
    /// PATH given to every process.
    #[arg(
        long,
        default_value = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    )]
    pub path_env: String,
}

fn config(args: Args) -> anyhow::Result<EnvdConfig> {
    let token = match (&args.access_token_file, args.access_token) {
        (Some(path), _) => Some(AccessToken::new(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        )),
        (None, Some(t)) => Some(AccessToken::new(t)),
        (None, None) => None,
    };
    let mut env_vars = BTreeMap::new();
    for kv in &args.env {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--env {kv:?} is not KEY=VALUE"))?;
        env_vars.insert(k.to_owned(), v.to_owned());
    }
    let config = EnvdConfig {
        passwd_path: args.passwd,
        group_path: args.group,
        default_user: args.default_user,
        default_workdir: args.default_workdir,
        env_vars,
        path_env: args.path_env,
        access_token: token,
        ..EnvdConfig::default()
    };
    config.validate()?;
    Ok(config)
}

/// Runs envd until SIGTERM or SIGINT.
pub fn run(args: Args) -> anyhow::Result<u8> {
    let listen = args.listen;
    let config = match config(args) {
        Ok(c) => c,
        Err(err) => {
            // Not eprintln!: it panics when stderr is a broken pipe.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "bulkhead envd: {err:#}");
            return Ok(EXIT_BAD_CONFIG);
        }
    };
    // One event-loop thread: envd waits on I/O and child processes, never computes, and an
    // idle sandbox should cost as little memory as possible (blocking work still gets its
    // own threads from tokio's blocking pool).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let result = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let mut server = tokio::spawn(bulkhead_envd::serve(config, listener, stopped));
        tokio::select! {
            res = &mut server => {
                res.context("envd server task")??;
                return Ok(0);
            }
            () = shutdown_signal() => {}
        }
        tracing::info!("envd stopping");
        let _ = stop_tx.send(true);
        // Open process and watch streams would hold a graceful shutdown forever: give them
        // a moment, then exit anyway. Processes envd started keep running.
        if let Ok(res) = tokio::time::timeout(SHUTDOWN_GRACE, server).await {
            res.context("envd server task")??;
        }
        Ok(0)
    });
    // PTY readers block on threads until their terminal closes; do not wait for them.
    rt.shutdown_background();
    result
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
