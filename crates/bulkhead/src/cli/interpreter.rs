//! `bulkhead interpreter`: the code-interpreter execution server on port 49999, started in
//! sandboxes of interpreter templates as the sandbox's default user (hidden from `--help`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bulkhead_interpreter::{INTERPRETER_PORT, InterpreterConfig};

/// Exit code for a configuration the server refuses (EX_USAGE).
const EXIT_BAD_CONFIG: u8 = 64;

/// Options of `bulkhead interpreter`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], INTERPRETER_PORT)))]
    pub listen: SocketAddr,
    /// Working directory of contexts created without one.
    #[arg(long, default_value = "/home/user", value_name = "DIR")]
    pub cwd: PathBuf,
    /// envd in the same sandbox, asked for the sandbox-wide env vars ("" = do not ask).
    #[arg(long, default_value = "127.0.0.1:49983")]
    pub envd: String,
    /// Languages whose default context is started at once (repeatable; "" = none).
    #[arg(long = "prewarm", default_value = "python")]
    pub prewarm: Vec<String>,
    /// Longest any execution may run, in seconds (0 = no limit but the client's).
    #[arg(long, default_value_t = 0)]
    pub max_execution: u64,
}

fn config(args: Args) -> anyhow::Result<InterpreterConfig> {
    let mut config = InterpreterConfig {
        default_cwd: args.cwd,
        prewarm: args.prewarm.into_iter().filter(|l| !l.is_empty()).collect(),
        max_execution: (args.max_execution > 0).then(|| Duration::from_secs(args.max_execution)),
        ..InterpreterConfig::default()
    }
    .with_installed_kernels(
        &std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
    );
    if !args.envd.is_empty() {
        config.envd = Some(
            args.envd
                .parse()
                .with_context(|| format!("--envd {:?} is not HOST:PORT", args.envd))?,
        );
    }
    config.validate()?;
    Ok(config)
}

/// Runs the server until SIGTERM or SIGINT.
pub fn run(args: Args) -> anyhow::Result<u8> {
    let listen = args.listen;
    let config = match config(args) {
        Ok(c) => c,
        Err(err) => {
            // Not eprintln!: it panics when stderr is a broken pipe.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "bulkhead interpreter: {err:#}");
            return Ok(EXIT_BAD_CONFIG);
        }
    };
    // One event-loop thread: the server only moves messages between sockets; the kernels
    // do the computing in their own processes.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let result = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        bulkhead_interpreter::serve(config, listener, super::envd::shutdown_signal())
            .await
            .context("serving")
    });
    rt.shutdown_background();
    result.map(|()| 0)
}
