//! Log setup: human-readable lines on stderr, filtered by `RUST_LOG` or `-v`.
//!
//! Logging never fails the process: a daemon whose stderr reader went away (envd, when the
//! server that drained it restarts) gets EPIPE on every write, and tracing's default is to
//! report that with `eprintln!`, which panics on the same broken stderr and took envd and
//! every connection it served down with it.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `verbose` raises the default level (0 = warn, 1 = info,
/// 2 = debug, 3+ = trace); `RUST_LOG` overrides it.
pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .try_init();
}
